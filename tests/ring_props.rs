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

/// The ring as encoded: the sorted owner table, then an index per partition.
#[derive(serde::Serialize)]
struct WireRing {
    nodes: Vec<NodeId>,
    owners: Vec<u32>,
}

fn decode(wire: &WireRing) -> Result<Ring, postcard::Error> {
    postcard::from_bytes(&postcard::to_allocvec(wire).expect("encode"))
}

#[test]
fn compact_encoding_round_trips_and_refuses_malformed_rings() {
    let members: Vec<NodeId> = (0..7).map(node).collect();
    let ring = Ring::new(Q, &members, N).expect("ring");
    let raw = postcard::to_allocvec(&ring).expect("encode");
    // One or two bytes a partition, plus the names once.
    assert!(raw.len() < 2 * Q + 7 * 16, "{} bytes", raw.len());
    let back: Ring = postcard::from_bytes(&raw).expect("decode");
    assert_eq!(back, ring);
    for p in 0..Q {
        assert_eq!(back.owner(p), ring.owner(p));
    }

    let (a, b) = (node(1), node(2));
    let good = WireRing {
        nodes: vec![a.clone(), b.clone()],
        owners: vec![0, 1, 0, 1],
    };
    assert_eq!(decode(&good).expect("valid ring").owner(1), &b);
    let bad = [
        // An index past the table.
        WireRing {
            nodes: vec![a.clone(), b.clone()],
            owners: vec![0, 1, 2, 1],
        },
        // A table out of order.
        WireRing {
            nodes: vec![b.clone(), a.clone()],
            owners: vec![0, 1, 0, 1],
        },
        // A name twice.
        WireRing {
            nodes: vec![a.clone(), a.clone()],
            owners: vec![0, 1, 0, 1],
        },
        // A name that owns nothing (equal rings must encode equally).
        WireRing {
            nodes: vec![a.clone(), b.clone()],
            owners: vec![0, 0, 0, 0],
        },
        // Not a power of two, or empty.
        WireRing {
            nodes: vec![a.clone(), b.clone()],
            owners: vec![0, 1, 0],
        },
        WireRing {
            nodes: vec![],
            owners: vec![],
        },
    ];
    for wire in &bad {
        assert!(decode(wire).is_err(), "accepted {:?}", wire.owners);
    }
}

const BIG_Q: usize = 16384;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// At Q = 16384 and up to 1,500 members a join moves exactly the
    /// newcomer's share (⌊Q/(S+1)⌋ or one more), only to the newcomer, and a
    /// leave moves only the leaver's partitions; both keep every node at
    /// ⌊Q/S⌋ or ⌈Q/S⌉ with N distinct nodes in every preference list.
    #[test]
    fn large_rings_move_only_their_share(s in 2usize..1500, leaver in any::<usize>()) {
        let members: Vec<NodeId> = (0..s).map(node).collect();
        let ring = Ring::new(BIG_Q, &members, N).expect("ring");
        let mut joined_members = members.clone();
        joined_members.push(node(9999));
        let joined = ring.rebalance(&joined_members, N).expect("join");
        let moved: Vec<usize> = (0..BIG_Q).filter(|&p| ring.owner(p) != joined.owner(p)).collect();
        prop_assert!(moved.len() <= BIG_Q.div_ceil(s + 1));
        for &p in &moved {
            prop_assert_eq!(joined.owner(p), &node(9999));
        }
        let gone = node(leaver % s);
        let left_members: Vec<NodeId> = members.iter().filter(|m| **m != gone).cloned().collect();
        let left = ring.rebalance(&left_members, N).expect("leave");
        for p in 0..BIG_Q {
            if ring.owner(p) != &gone {
                prop_assert_eq!(ring.owner(p), left.owner(p));
            }
        }
        for (r, count) in [(&joined, s + 1), (&left, s - 1)] {
            let own = r.ownership();
            prop_assert_eq!(own.len(), count);
            for c in own.values() {
                prop_assert!(*c == BIG_Q / count || *c == BIG_Q / count + 1);
            }
            for p in 0..BIG_Q {
                let pl = r.preference_list(p, N);
                prop_assert_eq!(pl.iter().collect::<BTreeSet<_>>().len(), N.min(count));
            }
        }
    }
}
