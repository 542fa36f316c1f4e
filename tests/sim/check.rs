//! The properties a finished run must satisfy, and the fingerprint the
//! determinism check compares.

use crate::sim::world::{World, key_name};
use bytes::Bytes;
use dynkv::core::{Object, Payload, VersionVector, ring_hash};
use dynkv::store::ReplicaStore;
use dynkv::store::hints::Hints;
use std::collections::BTreeMap;

/// Everything any disk holds for `key` (stores and hints), merged.
pub fn everything(world: &World, key: &[u8]) -> Object {
    let disks = world.disks.lock();
    let mut all = Object::new();
    for d in disks.iter() {
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
    let Some(node) = (0..world.params.nodes).find_map(|i| world.node(i)) else {
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
    world
        .disks
        .lock()
        .iter()
        .map(|d| d.hints.counts().values().sum::<u64>())
        .sum()
}

/// Lines describing replicas that disagree (empty when converged).
pub fn divergence(world: &World) -> Vec<String> {
    let mut out = Vec::new();
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
                Payload::Value { data, .. } => data == value,
                Payload::Tombstone => false,
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
                            Payload::Value { data, .. } => {
                                put_ctx.get(data).unwrap_or(&seen.created_in)
                            }
                            Payload::Tombstone => &seen.created_in,
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
                Payload::Value { data, .. } => String::from_utf8_lossy(data).into_owned(),
                Payload::Tombstone => "<del>".into(),
            };
            format!("{}:{}@{}={v}", s.dot.node, s.dot.counter, s.timestamp_ms)
        })
        .collect();
    format!("[{}] {{{}}}", ctx.join(" "), sibs.join(", "))
}
