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

/// Operations of a history in which values expire and replicas turn them
/// into tombstones at different times (`core::gc::expire`, the sweeper).
#[derive(Clone, Debug)]
enum ExpiryOp {
    /// Coordinator `coord` writes on top of its own copy; with `ttl`, the
    /// value expires `ttl` ticks after the write.
    Write { coord: usize, ttl: Option<u64> },
    /// Replica `to` merges replica `from`'s copy.
    Merge { from: usize, to: usize },
    /// Replica `at`'s sweeper runs now.
    Sweep { at: usize },
}

fn expiry_op() -> impl Strategy<Value = ExpiryOp> {
    prop_oneof![
        (0..REPLICAS, proptest::option::of(1u64..6))
            .prop_map(|(coord, ttl)| ExpiryOp::Write { coord, ttl }),
        (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| ExpiryOp::Merge { from, to }),
        (0..REPLICAS).prop_map(|at| ExpiryOp::Sweep { at }),
    ]
}

/// The replicas after `ops`, and the time (tick) at the end.
fn run_expiring(ops: &[ExpiryOp]) -> (Vec<Object>, u64) {
    let names: Vec<NodeId> = (0..REPLICAS)
        .map(|i| NodeId::new(&format!("n{i}")))
        .collect();
    let mut replicas = vec![Object::new(); REPLICAS];
    for (t, op) in ops.iter().enumerate() {
        let now = t as u64;
        match *op {
            ExpiryOp::Write { coord, ttl } => {
                let ctx = replicas[coord].context.clone();
                let payload = Payload::Value {
                    data: format!("w{t}").into(),
                    expires_at_ms: ttl.map(|d| now + d),
                };
                replicas[coord].update(&ctx, &names[coord], payload, now);
            }
            ExpiryOp::Merge { from, to } => {
                let src = replicas[from].clone();
                replicas[to].merge(&src);
            }
            ExpiryOp::Sweep { at } => {
                if let Some(converted) = dynkv::core::gc::expire(&replicas[at], now) {
                    replicas[at] = converted;
                }
            }
        }
    }
    (replicas, ops.len() as u64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Replicas that converted different expired values (or none) still
    /// merge commutatively, associatively and idempotently, and converting
    /// before or after a merge gives the same object: no order of sweeps
    /// and merges can bring an expired value back.
    #[test]
    fn merge_laws_hold_whichever_replicas_converted_expiries(
        ops in proptest::collection::vec(expiry_op(), 0..40)
    ) {
        let (r, now) = run_expiring(&ops);
        let [a, b, c] = [&r[0], &r[1], &r[2]];
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

        // Sweeping commutes with merging.
        let sweep = |o: &Object| dynkv::core::gc::expire(o, now).unwrap_or_else(|| o.clone());
        let mut swept_then_merged = sweep(a);
        swept_then_merged.merge(&sweep(b));
        prop_assert_eq!(sweep(&ab), swept_then_merged);
        // A converted replica already holds everything an unconverted one
        // could add.
        prop_assert!(sweep(&ab_c).descends(&ab_c));
    }
}
