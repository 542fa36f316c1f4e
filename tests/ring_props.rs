//! Property tests of ring placement (Dynamo strategy 3): balance, distinct
//! preference lists, and minimal movement on join and leave.

use dynkv::core::{NodeId, Ring, key_slot, ring_hash};
use proptest::prelude::*;
use std::collections::BTreeSet;

const Q: usize = 1024;
const N: usize = 3;

fn node(i: usize) -> NodeId {
    NodeId::new(&format!("node-{i:02}"))
}

fn assert_balanced(ring: &Ring, members: usize) -> Result<(), TestCaseError> {
    let own = ring.ownership();
    prop_assert_eq!(own.len(), members);
    for (m, c) in own {
        prop_assert!(
            c == Q / members || c == Q / members + 1,
            "{:?} owns {} of {} over {} members",
            m,
            c,
            Q,
            members
        );
    }
    Ok(())
}

fn assert_distinct_preference_lists(ring: &Ring, members: usize) -> Result<(), TestCaseError> {
    for p in 0..Q {
        let pl = ring.preference_list(p, N);
        prop_assert_eq!(pl.len(), N.min(members));
        let distinct: BTreeSet<_> = pl.iter().collect();
        prop_assert_eq!(distinct.len(), pl.len());
        prop_assert_eq!(&pl[0], ring.owner(p));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random joins and leaves: after each, the ring is balanced, preference
    /// lists are distinct, and only the partitions that must move do.
    #[test]
    fn joins_and_leaves_move_only_what_they_must(
        initial in 1usize..6,
        steps in proptest::collection::vec((any::<bool>(), 0usize..20), 1..12),
    ) {
        let mut members: BTreeSet<usize> = (0..initial).collect();
        let ids = |m: &BTreeSet<usize>| m.iter().map(|&i| node(i)).collect::<Vec<_>>();
        let mut ring = Ring::new(Q, &ids(&members), N).expect("ring");
        assert_balanced(&ring, members.len())?;
        assert_distinct_preference_lists(&ring, members.len())?;
        let mut next_id = 100;
        for (join, pick) in steps {
            let before = ring.clone();
            if join || members.len() == 1 {
                let newcomer = next_id;
                next_id += 1;
                members.insert(newcomer);
                ring = ring.rebalance(&ids(&members), N).expect("ring");
                // Every moved partition went to the newcomer, and it got
                // exactly its share.
                let moved: Vec<usize> = (0..Q).filter(|&p| before.owner(p) != ring.owner(p)).collect();
                for &p in &moved {
                    prop_assert_eq!(ring.owner(p), &node(newcomer));
                }
                prop_assert_eq!(moved.len(), ring.ownership()[&node(newcomer)]);
            } else {
                let leaver = *members.iter().nth(pick % members.len()).expect("member");
                members.remove(&leaver);
                ring = ring.rebalance(&ids(&members), N).expect("ring");
                // Only the leaver's partitions moved.
                for p in 0..Q {
                    if before.owner(p) != &node(leaver) {
                        prop_assert_eq!(before.owner(p), ring.owner(p));
                    }
                }
            }
            assert_balanced(&ring, members.len())?;
            assert_distinct_preference_lists(&ring, members.len())?;
        }
    }

    /// Keys sharing a `{hash tag}` share a slot, so a partition and a
    /// preference list, whatever Q and the membership.
    #[test]
    fn keys_sharing_a_hash_tag_share_a_preference_list(
        tag in "[a-z0-9]{1,8}",
        // No brace before the tag: Redis hashes the first {...} only.
        a in proptest::collection::vec(any::<u8>().prop_filter("no brace", |c| *c != b'{'), 0..16),
        b in proptest::collection::vec(any::<u8>().prop_filter("no brace", |c| *c != b'{'), 0..16),
        qbits in 6u32..=14,
        members in 1usize..8,
    ) {
        let ids: Vec<NodeId> = (0..members).map(node).collect();
        let ring = Ring::new(1 << qbits, &ids, N).expect("ring");
        let key = |rest: &[u8]| {
            let mut k = rest.to_vec();
            k.extend_from_slice(format!("{{{tag}}}").as_bytes());
            k.extend_from_slice(rest);
            k
        };
        let (ka, kb) = (key(&a), key(&b));
        prop_assert_eq!(key_slot(&ka), key_slot(tag.as_bytes()));
        prop_assert_eq!(
            ring.preference_list_for_hash(ring_hash(&ka), N),
            ring.preference_list_for_hash(ring_hash(&kb), N)
        );
    }

    /// Keys map to the partition whose hash range contains them.
    #[test]
    fn partition_ranges_cover_the_hash_space(hash in any::<u64>()) {
        let ring = Ring::new(Q, &[node(0)], N).expect("ring");
        let p = ring.partition_of(hash);
        prop_assert!(ring.partition_start(p) <= hash);
        if p + 1 < Q {
            prop_assert!(hash < ring.partition_start(p + 1));
        }
    }
}

#[test]
fn three_and_five_node_rings_spread_replicas_evenly() {
    for s in [3usize, 5] {
        let members: Vec<NodeId> = (0..s).map(node).collect();
        let ring = Ring::new(Q, &members, N).expect("ring");
        // Each node appears in about N/S of all preference lists.
        let mut appearances = std::collections::BTreeMap::new();
        for p in 0..Q {
            for m in ring.preference_list(p, N) {
                *appearances.entry(m).or_insert(0usize) += 1;
            }
        }
        let ideal = Q * N / s;
        for (m, a) in appearances {
            assert!(
                a.abs_diff(ideal) <= ideal / 5,
                "{m:?} is in {a} preference lists, ideal {ideal} (S={s})"
            );
        }
    }
}
