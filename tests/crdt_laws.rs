//! The data types' merges are commutative, associative and idempotent, and
//! an add is lost only to a remove that observed it: random histories of
//! writes through three coordinators, each built on a random subset of the
//! others' states, joined in every order.

use dynkv::core::crdt::{Amount, Authority, Counter, DotMap};
use dynkv::core::{Dot, NodeId, VersionVector};
use proptest::prelude::*;

fn dot(node: usize, counter: u64) -> Dot {
    Dot {
        node: NodeId::new(&format!("n{node}")),
        counter,
    }
}

/// One write: coordinator, which earlier states it read, what it does.
#[derive(Clone, Debug)]
struct Step {
    node: usize,
    reads: Vec<prop::sample::Index>,
    add: bool,
    member: u8,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            0..3usize,
            prop::collection::vec(any::<prop::sample::Index>(), 0..3),
            any::<bool>(),
            0..4u8,
        )
            .prop_map(|(node, reads, add, member)| Step {
                node,
                reads,
                add,
                member,
            }),
        1..24,
    )
}

/// Runs the history; returns every state and the adds no remove observed.
fn run_sets(steps: &[Step]) -> (Vec<DotMap<()>>, Vec<(u8, Dot)>) {
    let mut states: Vec<DotMap<()>> = Vec::new();
    let mut contexts: Vec<VersionVector> = Vec::new();
    let mut adds = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let mut base = DotMap::new();
        let mut ctx = VersionVector::new();
        if !states.is_empty() {
            for r in &s.reads {
                let j = r.index(states.len());
                base.merge(&states[j]);
                ctx.join(&contexts[j]);
            }
        }
        let d = dot(s.node, i as u64 + 1);
        let member = bytes::Bytes::from(vec![b'a' + s.member]);
        if s.add {
            base.insert(member, ());
            adds.push((s.member, d.clone()));
        } else {
            base.remove(&member);
        }
        base.stamp(&d, &ctx, i as u64);
        ctx.add(&d);
        states.push(base);
        contexts.push(ctx);
    }
    (states, adds)
}

proptest! {
    #[test]
    fn set_merge_is_a_semilattice(steps in steps()) {
        let (states, _) = run_sets(&steps);
        let join = |order: &mut dyn Iterator<Item = &DotMap<()>>| {
            let mut acc = DotMap::new();
            for s in order {
                acc.merge(s);
            }
            acc
        };
        let forward = join(&mut states.iter());
        let backward = join(&mut states.iter().rev());
        prop_assert_eq!(&forward, &backward);
        let mut twice = forward.clone();
        twice.merge(&forward);
        prop_assert_eq!(&twice, &forward);
        // Associativity: (a ⊔ b) ⊔ c == a ⊔ (b ⊔ c) on the first three.
        if states.len() >= 3 {
            let mut left = states[0].clone();
            left.merge(&states[1]);
            left.merge(&states[2]);
            let mut right_inner = states[1].clone();
            right_inner.merge(&states[2]);
            let mut right = states[0].clone();
            right.merge(&right_inner);
            prop_assert_eq!(left, right);
        }
    }

    #[test]
    fn a_set_add_survives_unless_a_remove_observed_it(steps in steps()) {
        let (states, adds) = run_sets(&steps);
        let mut all = DotMap::new();
        for s in &states {
            all.merge(s);
        }
        for (member, d) in adds {
            let key = [b'a' + member];
            let kept = all.get(&key).is_some_and(|tags| tags.contains_key(&d));
            // Some later state observed the add's dot and lacks it: a remove
            // (or a re-add, which replaces the tag) observed it.
            let observed = states.iter().any(|s| {
                s.seen().covers(&d) && s.get(&key).is_none_or(|tags| !tags.contains_key(&d))
            });
            prop_assert!(kept || observed, "add of {member} at {d:?} lost");
        }
    }

    #[test]
    fn counters_sum_every_increment_in_any_merge_order(
        incs in prop::collection::vec((0..3usize, -50i64..50), 1..40)
    ) {
        // Each coordinator builds on its own stored state (it owns its
        // entry), as the node does; states are then joined in two orders.
        let mut own: Vec<Counter> = vec![Counter::new(); 3];
        let mut counters = [0u64; 3];
        for (node, by) in &incs {
            counters[*node] += 1;
            let mut next = own[*node].clone();
            next.add(Amount::int(*by));
            let d = dot(*node, counters[*node]);
            let stored = own[*node].clone();
            let stored_own = Counter::own_entry(std::iter::once(&stored), &d.node);
            next.stamp(&d, 0, Authority::Owner, stored_own);
            own[*node] = next;
        }
        let total: i64 = incs.iter().map(|(_, by)| by).sum();
        let mut a = Counter::new();
        for c in &own {
            a.merge(c);
        }
        let mut b = Counter::new();
        for c in own.iter().rev() {
            b.merge(c);
            b.merge(c);
        }
        prop_assert_eq!(a.value(), Amount::int(total));
        prop_assert_eq!(b.value(), Amount::int(total));
    }
}
