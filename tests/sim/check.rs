//! The properties a finished run must satisfy (DESIGN.md §3.1, §3.2), plus
//! the fingerprint the determinism check compares.

use crate::sim::node::Key;
use crate::sim::world::World;
use dynkv::core::{Dot, Object, Payload};
use std::collections::BTreeMap;

/// Everything any node holds for `key` (stores and hints), merged: the
/// cluster's knowledge of the key.
pub fn everything(world: &World, key: &Key) -> Object {
    let mut all = Object::new();
    for node in &world.nodes {
        if let Some(obj) = node.store.get(key) {
            all.merge(obj);
        }
        for hinted in node.hints.values().filter_map(|m| m.get(key)) {
            all.merge(hinted);
        }
    }
    all
}

/// Checks every property; returns one line per violation.
pub fn check(world: &World) -> Vec<String> {
    let mut errors = Vec::new();
    let finals: BTreeMap<Key, Object> = world
        .keys
        .iter()
        .map(|k| (k.clone(), everything(world, k)))
        .collect();

    // 0. A dot names exactly one write. If a coordinator ever numbers two
    //    writes alike, merge keeps whichever copy a replica saw first, so
    //    replicas diverge for good and one write vanishes from each.
    let mut issued: BTreeMap<(&Key, &Dot), usize> = BTreeMap::new();
    for (i, w) in world.writes.iter().enumerate() {
        if let Some(first) = issued.insert((&w.key, &w.dot), i) {
            let f = &world.writes[first];
            errors.push(format!(
                "{:?} dot {}:{} issued twice: write #{first} {} (acked: {}) and #{i} {} (acked: {})",
                w.key,
                w.dot.node,
                w.dot.counter,
                show_payload(&f.payload),
                f.acked,
                show_payload(&w.payload),
                w.acked
            ));
        }
    }

    // 1. No acknowledged write is lost: its version is still there with its
    //    own payload, or a write whose context covered it (and which the
    //    cluster kept) superseded it.
    for (i, w) in world.writes.iter().enumerate().filter(|(_, w)| w.acked) {
        let fin = &finals[&w.key];
        match fin.siblings.iter().find(|s| s.dot == w.dot) {
            Some(s) if s.payload == w.payload => {}
            Some(s) => errors.push(format!(
                "acked write #{i} {:?} {}:{}={} lost: its dot holds {}",
                w.key,
                w.dot.node,
                w.dot.counter,
                show_payload(&w.payload),
                show_payload(&s.payload)
            )),
            None => {
                let superseded = fin.context.covers(&w.dot)
                    && world.writes.iter().any(|later| {
                        later.key == w.key
                            && later.ctx.covers(&w.dot)
                            && fin.context.covers(&later.dot)
                    });
                if !superseded {
                    errors.push(format!(
                        "acked write #{i} {:?} {}:{}={} lost: not in {}",
                        w.key,
                        w.dot.node,
                        w.dot.counter,
                        show_payload(&w.payload),
                        show(fin)
                    ));
                }
            }
        }
    }

    // 2. Convergence: every preference-list replica equals everything the
    //    cluster knows about the key, and no hint is left.
    for (key, fin) in &finals {
        for p in world.preference_list(key) {
            let held = world.nodes[p].store.get(key).cloned().unwrap_or_default();
            if &held != fin {
                errors.push(format!(
                    "{key:?}: replica {} holds {}, cluster has {}",
                    world.ids[p],
                    show(&held),
                    show(fin)
                ));
            }
        }
    }
    for (i, node) in world.nodes.iter().enumerate() {
        if node.hint_count() > 0 {
            errors.push(format!(
                "{} still holds {} hints",
                world.ids[i],
                node.hint_count()
            ));
        }
    }

    // 4. After convergence every coordinator returns the same GET winner.
    for (key, fin) in &finals {
        let answers = world.probes.get(key).map(Vec::as_slice).unwrap_or(&[]);
        if answers.len() != world.nodes.len() {
            errors.push(format!(
                "{key:?}: only {} of {} probe GETs answered",
                answers.len(),
                world.nodes.len()
            ));
        }
        for (node, winner) in answers {
            if winner.as_ref() != fin.winner() {
                errors.push(format!(
                    "{key:?}: GET via {} returned {winner:?}, expected {:?}",
                    world.ids[*node],
                    fin.winner()
                ));
            }
        }
    }
    errors
}

/// FNV-1a over the final stores, hint stores, client-visible log and write
/// oracle: equal fingerprints for equal runs (3. determinism).
pub fn fingerprint(world: &World) -> u64 {
    let mut text = String::new();
    for node in &world.nodes {
        text.push_str(&format!("{:?}{:?}", node.store, node.hints));
    }
    text.push_str(&format!("{:?}{:?}", world.log, world.writes));
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `value` or `<tombstone>`, for messages.
pub fn show_payload(p: &Payload) -> String {
    match p {
        Payload::Value { data, .. } => String::from_utf8_lossy(data).into_owned(),
        Payload::Tombstone => "<tombstone>".into(),
    }
}

/// A compact object: `[n0:2 n1:1] {n0:2@3320=c2r23, ...}`.
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
            format!(
                "{}:{}@{}={}",
                s.dot.node,
                s.dot.counter,
                s.timestamp_ms,
                show_payload(&s.payload)
            )
        })
        .collect();
    format!("[{}] {{{}}}", ctx.join(" "), sibs.join(", "))
}
