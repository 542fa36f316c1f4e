//! The properties a finished run must satisfy, and the fingerprint the
//! determinism check compares.

use crate::sim::world::{World, key_name};
use bytes::Bytes;
use dynkv::core::{Object, Payload, VersionVector, ring_hash};
use dynkv::store::ReplicaStore;
use dynkv::store::hints::Hints;
use std::collections::BTreeMap;

/// Everything any disk holds for `key` (stores and hints), merged. The
/// disks of nodes that left or were removed do not count: what they held
/// must have reached the remaining members.
pub fn everything(world: &World, key: &[u8]) -> Object {
    let counted = world.counted();
    let disks = world.disks.lock();
    let mut all = Object::new();
    for d in counted.iter().map(|i| &disks[*i]) {
        if let Ok(Some(obj)) = d.store.get(key) {
            all.merge(&obj);
        }
        for target in d.hints.counts().keys() {
            if let Ok(Some(obj)) = d.hints.get(target, key) {
                all.merge(&obj);
            }
        }
    }
    all
}

/// The preference list of `key` by the cluster's ring (node indexes).
fn owners(world: &World, key: &[u8]) -> Vec<usize> {
    let n = world.params.n.min(world.params.nodes);
    let Some(node) = world.alive_nodes().into_iter().find_map(|i| world.node(i)) else {
        return Vec::new();
    };
    node.membership().with(|s| {
        let p = s.ring.partition_of(ring_hash(key));
        s.ring
            .preference_list(p, n)
            .iter()
            .filter_map(|m| m.as_str().strip_prefix('n').and_then(|i| i.parse().ok()))
            .collect()
    })
}

fn hints_left(world: &World) -> u64 {
    let counted = world.counted();
    let disks = world.disks.lock();
    counted
        .iter()
        .map(|i| disks[*i].hints.counts().values().sum::<u64>())
        .sum()
}

/// Lines describing a membership that has not settled: every member runs,
/// agrees on one state and no change is under way; the members are the
/// nodes the schedule left in.
fn unsettled(world: &World) -> Vec<String> {
    let counted = world.counted();
    let alive = world.alive_nodes();
    let mut out = Vec::new();
    if alive != counted {
        out.push(format!(
            "running {alive:?}, members by schedule {counted:?}"
        ));
    }
    let states: Vec<(usize, u64, bool, Vec<String>)> = alive
        .iter()
        .filter_map(|&i| {
            world.node(i).map(|kv| {
                kv.membership().with(|s| {
                    (
                        i,
                        s.generation,
                        s.transition.is_some(),
                        s.members.keys().map(|m| m.to_string()).collect(),
                    )
                })
            })
        })
        .collect();
    let want: Vec<String> = counted.iter().map(|i| format!("n{i}")).collect();
    for (i, generation, moving, members) in &states {
        if *moving {
            out.push(format!("n{i}: a membership change is still under way"));
        }
        if *members != want {
            out.push(format!("n{i}: members {members:?}, want {want:?}"));
        }
        if *generation != states[0].1 {
            out.push(format!(
                "n{i}: ring generation {generation}, n{} has {}",
                states[0].0, states[0].1
            ));
        }
    }
    out
}

/// Lines naming partitions whose replicas' Merkle roots differ.
fn merkle_mismatches(world: &World) -> Vec<String> {
    let Some(node) = world.alive_nodes().into_iter().find_map(|i| world.node(i)) else {
        return vec!["no node runs".into()];
    };
    let n = world.params.n.min(world.params.nodes);
    let lists: Vec<Vec<String>> = node.membership().with(|s| {
        (0..s.ring.partitions())
            .map(|p| {
                s.ring
                    .preference_list(p, n)
                    .iter()
                    .map(|m| m.to_string())
                    .collect()
            })
            .collect()
    });
    let mut out = Vec::new();
    for (p, list) in lists.iter().enumerate() {
        let roots: Vec<(String, Option<String>)> = list
            .iter()
            .map(|m| {
                let i: Option<usize> = m.strip_prefix('n').and_then(|i| i.parse().ok());
                let root = i
                    .and_then(|i| world.node(i))
                    .and_then(|kv| kv.merkle_root(p))
                    .map(|r| format!("{r:?}"));
                (m.clone(), root)
            })
            .collect();
        if roots.iter().any(|(_, r)| r.is_none() || *r != roots[0].1) {
            out.push(format!("partition {p}: Merkle roots differ: {roots:?}"));
        }
    }
    out
}

/// Lines describing replicas that disagree (empty when converged).
pub fn divergence(world: &World) -> Vec<String> {
    let mut out = unsettled(world);
    out.extend(merkle_mismatches(world).into_iter().take(3));
    let hints = hints_left(world);
    if hints > 0 {
        out.push(format!("{hints} hints still pending"));
    }
    for k in 0..world.params.keys {
        let key = key_name(k);
        let fin = everything(world, &key);
        for o in owners(world, &key) {
            let held = world.stored(o, &key);
            if held != fin {
                out.push(format!(
                    "{key:?}: replica n{o} holds {}, cluster has {}",
                    show(&held),
                    show(&fin)
                ));
            }
        }
    }
    out
}

pub fn converged(world: &World) -> bool {
    divergence(world).is_empty()
}

/// Checks every property; one line per violation.
pub fn check(world: &World) -> Vec<String> {
    let mut errors: Vec<String> = world.observer.with(|o| o.conflicts.clone());
    let writes = world.writes.lock().clone();
    let put_ctx: BTreeMap<Bytes, VersionVector> = writes
        .iter()
        .filter_map(|w| Some((w.value.clone()?, w.ctx.clone()?)))
        .collect();
    let finals: BTreeMap<Bytes, Object> = (0..world.params.keys)
        .map(|k| (key_name(k), everything(world, &key_name(k))))
        .collect();
    world.observer.with(|obs| {
        for w in writes.iter().filter(|w| w.acked) {
            let Some(value) = &w.value else { continue };
            let Some(fin) = finals.get(&w.key) else {
                continue;
            };
            let present = fin.siblings.iter().any(|s| match &s.payload {
                Payload::Value { data, .. }
                | Payload::Flagged { data, .. }
                | Payload::Item { data, .. } => data == value,
                // The simulation writes strings only.
                Payload::Tombstone | Payload::Typed { .. } => false,
            });
            if present {
                continue;
            }
            let Some(dots) = obs.by_value.get(value) else {
                errors.push(format!(
                    "acked write {:?}={value:?} was never stored",
                    w.key
                ));
                continue;
            };
            // Superseded by a write (kept in the cluster's history) whose
            // context covered it.
            let superseded = |dot: &dynkv::core::Dot| {
                fin.context.covers(dot)
                    && obs.dots.iter().any(|(y, seen)| {
                        if y == dot || seen.key != w.key || !fin.context.covers(y) {
                            return false;
                        }
                        let ctx = match &seen.payload {
                            Payload::Value { data, .. }
                            | Payload::Flagged { data, .. }
                            | Payload::Item { data, .. } => {
                                put_ctx.get(data).unwrap_or(&seen.created_in)
                            }
                            Payload::Tombstone | Payload::Typed { .. } => &seen.created_in,
                        };
                        ctx.covers(dot)
                    })
            };
            if !dots.iter().any(superseded) {
                errors.push(format!(
                    "acked write {:?}={value:?} ({dots:?}) lost without a write that saw it: {}",
                    w.key,
                    show(fin)
                ));
            }
        }
    });
    errors.extend(divergence(world).into_iter().take(10));
    errors
}

/// FNV-1a over every disk, every hint and the client log.
pub fn fingerprint(world: &World) -> u64 {
    let mut text = String::new();
    for d in world.disks.lock().iter() {
        for k in 0..world.params.keys {
            let key = key_name(k);
            text.push_str(&format!("{:?}", d.store.get(&key).ok().flatten()));
        }
        text.push_str(&format!("{:?}", d.hints.counts()));
    }
    text.push_str(&format!("{:?}", world.log.lock()));
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `[ctx] {dot@ts=value, ...}`, for messages.
pub fn show(obj: &Object) -> String {
    let ctx: Vec<String> = obj
        .context
        .entries()
        .map(|(n, c)| format!("{n}:{c}"))
        .collect();
    let sibs: Vec<String> = obj
        .siblings
        .iter()
        .map(|s| {
            let v = match &s.payload {
                Payload::Value { data, .. }
                | Payload::Flagged { data, .. }
                | Payload::Item { data, .. } => String::from_utf8_lossy(data).into_owned(),
                Payload::Tombstone => "<del>".into(),
                Payload::Typed { value, .. } => format!("<{}>", value.kind().redis_name()),
            };
            format!("{}:{}@{}={v}", s.dot.node, s.dot.counter, s.timestamp_ms)
        })
        .collect();
    format!("[{}] {{{}}}", ctx.join(" "), sibs.join(", "))
}

/// For debugging one seed: the client and fault log, then each node's copy
/// of `key` and its view of the key's preference lists.
pub fn dump(world: &World, key: &[u8]) {
    for line in world.log.lock().iter() {
        eprintln!("[log] {line}");
    }
    let n = world.params.n;
    for i in 0..world.params.nodes {
        eprintln!("[dump] n{i} holds {}", show(&world.stored(i, key)));
        if let Some(kv) = world.node(i) {
            kv.membership().with(|s| {
                let p = s.ring.partition_of(ring_hash(key));
                eprintln!(
                    "[dump] n{i} generation {} partition {p}: owners {:?}, next {:?}",
                    s.generation,
                    s.ring.preference_list(p, n),
                    s.next_preference_list(p, n)
                );
            });
        }
    }
}
