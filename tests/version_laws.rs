//! Property tests of the versioning core (dotted version vectors + sibling
//! merge): merge is commutative, associative and idempotent, and no write is
//! ever lost unless a later write's context covered it.
//!
//! Histories are generated as Dynamo would produce them: several replicas,
//! clients that read a replica (getting its context) and write through some
//! coordinator with that context, and replicas exchanging state by merge.

use dynkv::core::{Dot, NodeId, Object, Payload, VersionVector};
use proptest::prelude::*;

const REPLICAS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// A client read `read_from` (or used an empty context) and wrote
    /// through coordinator `coord`.
    Write {
        coord: usize,
        read_from: Option<usize>,
        delete: bool,
    },
    /// Replica `to` receives replica `from`'s copy (replication, repair, AE).
    Merge { from: usize, to: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..REPLICAS,
            proptest::option::of(0..REPLICAS),
            any::<bool>()
        )
            .prop_map(|(coord, read_from, delete)| Op::Write {
                coord,
                read_from,
                delete: delete && read_from.is_some(),
            }),
        (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Op::Merge { from, to }),
    ]
}

/// Every write made: its dot, and the context its client sent.
struct History {
    replicas: Vec<Object>,
    writes: Vec<(Dot, VersionVector)>,
}

fn run(ops: &[Op]) -> History {
    let names: Vec<NodeId> = (0..REPLICAS)
        .map(|i| NodeId::new(&format!("n{i}")))
        .collect();
    let mut replicas = vec![Object::new(); REPLICAS];
    let mut writes = Vec::new();
    for (t, op) in ops.iter().enumerate() {
        match *op {
            Op::Write {
                coord,
                read_from,
                delete,
            } => {
                let ctx = read_from
                    .map(|r| replicas[r].context.clone())
                    .unwrap_or_default();
                let payload = if delete {
                    Payload::Tombstone
                } else {
                    Payload::value(format!("w{t}"))
                };
                let dot = replicas[coord].update(&ctx, &names[coord], payload, t as u64);
                writes.push((dot, ctx));
            }
            Op::Merge { from, to } => {
                let src = replicas[from].clone();
                replicas[to].merge(&src);
            }
        }
    }
    History { replicas, writes }
}

fn merged(objects: &[Object]) -> Object {
    let mut all = Object::new();
    for o in objects {
        all.merge(o);
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_is_commutative_associative_idempotent(ops in proptest::collection::vec(op(), 0..40)) {
        let h = run(&ops);
        let [a, b, c] = [&h.replicas[0], &h.replicas[1], &h.replicas[2]];

        let mut ab = a.clone();
        ab.merge(b);
        let mut ba = b.clone();
        ba.merge(a);
        prop_assert_eq!(&ab, &ba);

        let mut ab_c = ab.clone();
        ab_c.merge(c);
        let mut bc = b.clone();
        bc.merge(c);
        let mut a_bc = a.clone();
        a_bc.merge(&bc);
        prop_assert_eq!(&ab_c, &a_bc);

        let mut aa = a.clone();
        aa.merge(a);
        prop_assert_eq!(&aa, a);
    }

    #[test]
    fn no_write_is_lost_unless_a_context_covered_it(ops in proptest::collection::vec(op(), 0..40)) {
        let h = run(&ops);
        let all = merged(&h.replicas);
        for (dot, _) in &h.writes {
            let present = all.siblings.iter().any(|s| &s.dot == dot);
            let superseded = h.writes.iter().any(|(_, ctx)| ctx.covers(dot));
            prop_assert!(
                present || superseded,
                "write {:?} vanished without being superseded", dot
            );
            // Conversely, a superseded write never survives the full merge.
            if superseded {
                prop_assert!(!present, "write {:?} was superseded but survived", dot);
            }
        }
    }

    #[test]
    fn dots_are_unique(ops in proptest::collection::vec(op(), 0..40)) {
        let h = run(&ops);
        let mut dots: Vec<&Dot> = h.writes.iter().map(|(d, _)| d).collect();
        dots.sort();
        let before = dots.len();
        dots.dedup();
        prop_assert_eq!(before, dots.len());
    }

    #[test]
    fn winner_is_the_same_on_every_converged_replica(ops in proptest::collection::vec(op(), 0..40)) {
        let h = run(&ops);
        let all = merged(&h.replicas);
        for r in &h.replicas {
            let mut converged = r.clone();
            for other in &h.replicas {
                converged.merge(other);
            }
            prop_assert_eq!(converged.winner(), all.winner());
        }
    }
}

#[test]
fn two_writes_with_the_same_context_through_one_coordinator_both_survive() {
    // The classic vector-clock flaw Dynamo's paper admits: dotted versions
    // keep both.
    let node = NodeId::new("a");
    let mut obj = Object::new();
    obj.update(&VersionVector::new(), &node, Payload::value("base"), 1);
    let ctx = obj.context.clone();
    obj.update(&ctx, &node, Payload::value("x"), 2);
    obj.update(&ctx, &node, Payload::value("y"), 3);
    assert_eq!(obj.siblings.len(), 2);
}
