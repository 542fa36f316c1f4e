//! Cluster mode with real processes on loopback: forming
//! 3- and 5-node clusters through `--join`, placement of every key on
//! exactly N nodes, sloppy quorum with hinted handoff across a SIGKILL,
//! quorum failures, sibling creation under a network partition
//! (`DYN.DEBUG PARTITION`) and their survival through the heal, read repair
//! of a stale replica, membership surviving restarts, and the largest value
//! a client may send replicating like any other.
//!
//! Every test starts its own cluster on free ports (harness:
//! `tests/common/cluster.rs`) and waits for conditions with generous
//! deadlines instead of fixed sleeps. The tests spawn 3–5 processes each;
//! on a small machine run them with `--test-threads=1` and `--release`:
//!
//! ```text
//! cargo test --release --test cluster -- --test-threads=1
//! ```

mod common;

use common::cluster::{
    CONVERGE_TIMEOUT, Cluster, Member, PARTITIONS, Versions, assert_none, info_int, name, wait_for,
};
use common::{Reply, is_real_redis};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long hinted handoff may take to drain after the target is back.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(30);
/// How long failure detection may take to mark a dead node "down".
const DETECT_TIMEOUT: Duration = Duration::from_secs(30);

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn kvs(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("{prefix}:{i}"),
                format!("{prefix}-value-{i}-{}", "x".repeat(i % 40)),
            )
        })
        .collect()
}

fn expect_unavailable(r: &Reply, what: &str) {
    match r {
        Reply::Error(e) if e.starts_with("UNAVAILABLE") => {}
        other => panic!("{what}: expected an error starting with UNAVAILABLE, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 1. formation
// ---------------------------------------------------------------------------

/// Starts `size` nodes joining through `join_via(i)` and checks the agreed
/// view: members, ring shape, ownership balance, INFO dynamo.
fn check_formation(size: usize, join_via: impl Fn(usize) -> usize) {
    let c = Cluster::start_with(size, (3, 2, 2), &["--fsync", "everysec"], join_via);
    let all: Vec<usize> = (0..size).collect();
    // Every node lists every member (right address, "up") and all nodes
    // report identical member rows and an identical ring.
    c.wait_converged(&all, CONVERGE_TIMEOUT);

    let names: BTreeSet<String> = all.iter().map(|&i| name(i)).collect();
    let ring = c.ring(0).expect("DYN.RING");
    assert_eq!(
        ring.keys().copied().collect::<Vec<i64>>(),
        (0..PARTITIONS as i64).collect::<Vec<i64>>(),
        "DYN.RING must list partitions 0..{PARTITIONS} exactly once each"
    );
    let n = 3.min(size);
    let mut first_owner: BTreeMap<String, i64> = BTreeMap::new();
    for (p, list) in &ring {
        assert_eq!(
            list.len(),
            n,
            "partition {p}: preference list should have N={n} names, got {list:?}"
        );
        let distinct: BTreeSet<&String> = list.iter().collect();
        assert_eq!(
            distinct.len(),
            n,
            "partition {p}: preference list has repeated nodes: {list:?}"
        );
        for m in list {
            assert!(
                names.contains(m),
                "partition {p}: unknown node {m:?} in {list:?}"
            );
        }
        *first_owner.entry(list[0].clone()).or_insert(0) += 1;
    }

    let members = c.members(0).expect("DYN.MEMBERS");
    let total: i64 = members.iter().map(|m| m.partitions).sum();
    assert_eq!(
        total, PARTITIONS as i64,
        "partitions_owned should sum to {PARTITIONS}: {members:?}"
    );
    for m in &members {
        // |owned - Q/S| <= 1
        assert!(
            (m.partitions * size as i64 - PARTITIONS as i64).abs() <= size as i64,
            "{} owns {} partitions; with S={size} each node should own {PARTITIONS}/{size} ±1: {members:?}",
            m.name,
            m.partitions
        );
        // The owner of a partition heads its preference list (Dynamo §4.2).
        assert_eq!(
            first_owner.get(&m.name).copied().unwrap_or(0),
            m.partitions,
            "{} reports {} partitions owned but heads {} preference lists in DYN.RING",
            m.name,
            m.partitions,
            first_owner.get(&m.name).copied().unwrap_or(0)
        );
    }

    for &i in &all {
        let info = c.info(i).expect("INFO dynamo");
        assert_eq!(
            info.get("node_name"),
            Some(&name(i)),
            "INFO dynamo node_name on {}",
            name(i)
        );
        let row: &Member = members.iter().find(|m| m.name == name(i)).expect("own row");
        for (field, want) in [
            ("members_up", size as i64),
            ("members_down", 0),
            ("n", n as i64),
            ("r", 2),
            ("w", 2),
            ("partitions_owned", row.partitions),
            ("hints_pending", 0),
            ("quorum_failures", 0),
        ] {
            let got = info_int(&info, field).unwrap_or_else(|e| panic!("{}: {e}", name(i)));
            assert_eq!(got, want, "INFO dynamo {field} on {}", name(i));
        }
        for field in [
            "hints_delivered",
            "read_repairs",
            "ae_keys_repaired",
            "gets_with_siblings",
        ] {
            info_int(&info, field).unwrap_or_else(|e| panic!("{}: {e}", name(i)));
        }
    }
}

#[test]
fn three_and_five_node_clusters_form() {
    if is_real_redis() {
        return;
    }
    check_formation(3, |_| 0);
    // Joins go through different members: n4 via n2, n5 via n3.
    check_formation(5, |i| match i {
        3 => 1,
        4 => 2,
        _ => 0,
    });
}

// ---------------------------------------------------------------------------
// 2. placement
// ---------------------------------------------------------------------------

fn check_keys_on_n_nodes(size: usize) {
    let c = Cluster::start(size);
    let data = kvs("place", 10_000);
    assert_none(
        &c.set_many(0, &data),
        &format!("SET through {} (pipelined)", name(0)),
    );
    for i in 0..size {
        assert_none(
            &c.check_gets(i, &data),
            &format!("GET through {} (key, expected, got)", name(i)),
        );
    }

    let n = 3.min(size);
    let ring = c.ring(0).expect("DYN.RING");
    let lists: BTreeSet<BTreeSet<String>> =
        ring.values().map(|l| l.iter().cloned().collect()).collect();
    let keys: Vec<&str> = data.iter().map(|(k, _)| k.as_str()).collect();
    // W=2 acknowledges before the third replica has written, so poll
    // until every key has reached all N replicas.
    wait_for(
        Duration::from_secs(30),
        &format!(
            "each of {} keys on exactly N={n} nodes' storage",
            data.len()
        ),
        || {
            let locals: Vec<Vec<Versions>> = (0..size).map(|i| c.local_many(i, &keys)).collect();
            let mut short = Vec::new();
            for (k, (key, value)) in data.iter().enumerate() {
                let mut holders = BTreeSet::new();
                for (i, node) in locals.iter().enumerate() {
                    let v = &node[k];
                    if v.values.is_empty() {
                        continue;
                    }
                    assert_eq!(
                        v.values,
                        vec![some(value)],
                        "DYN.DEBUG LOCAL {key} on {}: wrong content",
                        name(i)
                    );
                    holders.insert(name(i));
                }
                assert!(
                    holders.len() <= n,
                    "key {key} is stored on {} nodes {holders:?}, more than N={n}",
                    holders.len()
                );
                if holders.len() < n {
                    short.push((key.clone(), holders));
                } else {
                    assert!(
                        lists.contains(&holders),
                        "key {key} is stored on {holders:?}, which is no preference list in DYN.RING"
                    );
                }
            }
            if short.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} keys on fewer than {n} nodes, e.g. {:?}",
                    short.len(),
                    &short[..short.len().min(5)]
                ))
            }
        },
    );
}

#[test]
fn keys_live_on_exactly_n_nodes() {
    if is_real_redis() {
        return;
    }
    check_keys_on_n_nodes(3);
}

#[test]
fn keys_live_on_exactly_n_nodes_of_five() {
    if is_real_redis() {
        return;
    }
    check_keys_on_n_nodes(5);
}

// ---------------------------------------------------------------------------
// 3. sloppy quorum + hinted handoff
// ---------------------------------------------------------------------------

#[test]
fn sigkill_one_node_writes_keep_succeeding_and_hints_drain() {
    if is_real_redis() {
        return;
    }
    let mut c = Cluster::start(3);
    c.kill9(2);

    let a = kvs("hh:a", 500);
    let b = kvs("hh:b", 500);
    assert_none(&c.set_many(0, &a), "SET through n1 with n3 killed (W=2)");
    assert_none(&c.set_many(1, &b), "SET through n2 with n3 killed (W=2)");
    let all: Vec<(String, String)> = a.iter().chain(&b).cloned().collect();
    for i in [0, 1] {
        assert_none(
            &c.check_gets(i, &all),
            &format!(
                "GET through {} with n3 killed (key, expected, got)",
                name(i)
            ),
        );
    }

    // Three nodes, N=3: no fallback node exists, so the coordinators keep
    // the hints for n3 themselves — one per key at least.
    let mut for_n3 = 0;
    for i in [0, 1] {
        let h = c.hints(i).expect("DYN.HINTS");
        for (target, count) in &h {
            assert_eq!(
                target,
                "n3",
                "{} holds {count} hints for {target}, which is up: {h:?}",
                name(i)
            );
        }
        for_n3 += h.get("n3").copied().unwrap_or(0);
    }
    assert!(
        for_n3 >= all.len() as i64,
        "n1+n2 hold {for_n3} hints for n3; expected at least {} (one per key written while it was down)",
        all.len()
    );
    let pending = c.info_sum(&[0, 1], "hints_pending");
    assert!(
        pending >= all.len() as i64,
        "INFO dynamo hints_pending on n1+n2 = {pending}, expected >= {}",
        all.len()
    );

    // Local failure detection: the survivors mark n3 down.
    c.wait_status(0, &[0, 1], DETECT_TIMEOUT);
    c.wait_status(1, &[0, 1], DETECT_TIMEOUT);

    c.restart(2);
    wait_for(
        HANDOFF_TIMEOUT,
        "DYN.HINTS empty on every node after n3 restarted",
        || {
            for i in 0..3 {
                let h = c.hints(i)?;
                if !h.is_empty() {
                    return Err(format!("{} still holds hints {h:?}", name(i)));
                }
            }
            Ok(())
        },
    );
    for i in 0..3 {
        let info = c.info(i).expect("INFO dynamo");
        assert_eq!(
            info_int(&info, "hints_pending").unwrap(),
            0,
            "INFO dynamo hints_pending on {} after DYN.HINTS drained",
            name(i)
        );
    }
    let delivered = c.info_sum(&[0, 1], "hints_delivered");
    assert!(
        delivered >= 1,
        "INFO dynamo hints_delivered on n1+n2 = {delivered} after {for_n3} hints drained"
    );

    let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    let locals = c.local_many(2, &keys);
    let wrong: Vec<_> = all
        .iter()
        .zip(&locals)
        .filter(|((_, v), l)| l.values != vec![some(v)])
        .map(|((k, v), l)| (k.clone(), v.clone(), l.values.clone()))
        .collect();
    assert_none(
        &wrong,
        "DYN.DEBUG LOCAL on n3 after handoff drained (key, expected, got)",
    );
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
}

// ---------------------------------------------------------------------------
// 4. quorum failure
// ---------------------------------------------------------------------------

#[test]
fn two_of_three_down() {
    if is_real_redis() {
        return;
    }
    let mut c = Cluster::start(3);
    c.kill9(1);
    c.kill9(2);

    // Before and after n1 has noticed that the others are gone.
    let r = c.q(0, &["SET", "tt:k", "v1"]);
    expect_unavailable(
        &r,
        "SET (W=2) through n1, first attempt after n2, n3 were killed",
    );
    c.wait_status(0, &[0], DETECT_TIMEOUT);
    let r = c.q(0, &["SET", "tt:k", "v1"]);
    expect_unavailable(&r, "SET (W=2) through n1 once n2, n3 are marked down");

    let r = c.q(0, &["DYN.PUT", "tt:k", "", "v", "W", "1"]);
    assert_eq!(r, ok(), "DYN.PUT tt:k \"\" v W 1 through the survivor");
    let got = c
        .dyn_get(0, "tt:k", Some(1))
        .unwrap_or_else(|e| panic!("DYN.GET tt:k R 1 through n1: {e}"));
    assert!(
        got.values.contains(&some("v")),
        "DYN.GET tt:k R 1 should include the W 1 write: {got:?}"
    );
    for v in &got.values {
        // A failed SET may have left its value on n1 (Dynamo does not undo
        // partial writes); nothing else may appear.
        assert!(
            *v == some("v") || *v == some("v1"),
            "DYN.GET tt:k R 1: unexpected value {v:?} in {got:?}"
        );
    }

    expect_unavailable(
        &c.q(0, &["DYN.GET", "tt:k"]),
        "DYN.GET (R=2) with one node up",
    );
    expect_unavailable(&c.q(0, &["GET", "tt:k"]), "GET (R=2) with one node up");
    let failures = c.info_sum(&[0], "quorum_failures");
    assert!(
        failures >= 4,
        "INFO dynamo quorum_failures on n1 = {failures}, expected >= 4 (2 SET, DYN.GET, GET)"
    );

    // Back to full strength: the W 1 write reaches the other replicas.
    c.restart(1);
    c.restart(2);
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
    assert_eq!(
        c.q(1, &["SET", "tt:other", "x"]),
        ok(),
        "SET once all are back"
    );
    wait_for(
        HANDOFF_TIMEOUT,
        "the W 1 value of tt:k on every replica",
        || {
            for i in 0..3 {
                let l = c.local(i, "tt:k");
                if !l.values.contains(&some("v")) {
                    return Err(format!("{}: {l:?}", name(i)));
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// 5. partition → siblings
// ---------------------------------------------------------------------------

#[test]
fn partition_makes_siblings_that_survive_heal() {
    if is_real_redis() {
        return;
    }
    let c = Cluster::start(3);
    let key = "sib:k";
    assert_eq!(c.q(0, &["SET", key, "base"]), ok(), "SET {key} base");
    let base = c
        .dyn_get(0, key, None)
        .unwrap_or_else(|e| panic!("DYN.GET {key}: {e}"));
    assert_eq!(base.values, vec![some("base")], "DYN.GET {key} after SET");
    assert!(
        !base.context.is_empty(),
        "DYN.GET context is empty: {base:?}"
    );
    wait_for(
        Duration::from_secs(10),
        "base on all three replicas",
        || {
            for i in 0..3 {
                let l = c.local(i, key);
                if l.values != vec![some("base")] {
                    return Err(format!("{}: {l:?}", name(i)));
                }
            }
            Ok(())
        },
    );

    c.cut(&[0], &[1, 2]);
    let r = c.q(0, &["DYN.PUT", key, &base.context, "left", "W", "1"]);
    assert_eq!(r, ok(), "DYN.PUT {key} ctx left W 1 through n1 (cut off)");
    let r = c.q(1, &["DYN.PUT", key, &base.context, "right", "W", "1"]);
    assert_eq!(r, ok(), "DYN.PUT {key} ctx right W 1 through n2");

    // The partition really separates the two sides.
    let l = c.local(0, key);
    assert_eq!(
        l.values,
        vec![some("left")],
        "n1's own copy during the partition"
    );
    // n2 may have forwarded to n3 as coordinator: wait for its own copy.
    wait_for(Duration::from_secs(10), "n2's own copy to be right", || {
        let l = c.local(1, key);
        assert!(
            !l.values.contains(&some("left")),
            "n2 has n1's write during the partition: {l:?}"
        );
        if l.values == vec![some("right")] {
            Ok(())
        } else {
            Err(format!("n2: {l:?}"))
        }
    });
    let l = c.local(0, key);
    assert_eq!(
        l.values,
        vec![some("left")],
        "n1's own copy during the partition"
    );

    c.heal(&[0, 1, 2]);
    // DYN.GET triggers read repair; hints and anti-entropy also help.
    wait_for(
        Duration::from_secs(60),
        "DYN.GET through every node to show siblings left and right",
        || {
            for i in 0..3 {
                let g = c
                    .dyn_get(i, key, None)
                    .map_err(|e| format!("{}: {e}", name(i)))?;
                if g.sorted() != vec![some("left"), some("right")] {
                    return Err(format!("{}: {g:?}", name(i)));
                }
            }
            Ok(())
        },
    );
    wait_for(
        Duration::from_secs(30),
        "every replica's own storage to hold both siblings",
        || {
            for i in 0..3 {
                let l = c.local(i, key);
                if l.sorted() != vec![some("left"), some("right")] {
                    return Err(format!("{}: {l:?}", name(i)));
                }
            }
            Ok(())
        },
    );
    let winners: Vec<Reply> = (0..3).map(|i| c.q(i, &["GET", key])).collect();
    assert!(
        winners[0] == Reply::Bulk(b"left".to_vec()) || winners[0] == Reply::Bulk(b"right".to_vec()),
        "GET {key} through n1 should be one of the siblings: {winners:?}"
    );
    assert!(
        winners.iter().all(|w| *w == winners[0]),
        "GET {key} must give the same winner on every node: {winners:?}"
    );
    let sib = c.info_sum(&[0, 1, 2], "gets_with_siblings");
    assert!(sib >= 1, "INFO dynamo gets_with_siblings summed = {sib}");

    // A put with the merged context resolves the conflict everywhere.
    let merged = c
        .dyn_get(2, key, None)
        .unwrap_or_else(|e| panic!("DYN.GET {key} through n3: {e}"));
    let r = c.q(2, &["DYN.PUT", key, &merged.context, "resolved"]);
    assert_eq!(r, ok(), "DYN.PUT {key} merged-ctx resolved through n3");
    wait_for(
        Duration::from_secs(30),
        "the resolved value alone on every node",
        || {
            for i in 0..3 {
                let g = c
                    .dyn_get(i, key, None)
                    .map_err(|e| format!("{}: {e}", name(i)))?;
                if g.values != vec![some("resolved")] {
                    return Err(format!("DYN.GET through {}: {g:?}", name(i)));
                }
                let l = c.local(i, key);
                if l.values != vec![some("resolved")] {
                    return Err(format!("DYN.DEBUG LOCAL on {}: {l:?}", name(i)));
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// 6. read repair
// ---------------------------------------------------------------------------

/// Which mechanism this isolates: n3 is cut off while `rr:k` is updated
/// v1 → v2 (W=2 on n1+n2). The node holding the hint for n3 is then
/// SIGKILLed, so hinted handoff cannot repair n3; n3 is checked to be
/// still stale right after the heal (so anti-entropy has not run yet), and
/// a DYN.GET through the other survivor (R=2, so n3 must answer) must push
/// v2 to n3 within 5 s and bump `read_repairs`. Finally the hint holder
/// comes back and its hint drains (delivery of an already-repaired version
/// is harmless).
#[test]
fn read_repair_fixes_stale_replica() {
    if is_real_redis() {
        return;
    }
    let mut c = Cluster::start(3);
    let key = "rr:k";
    assert_eq!(c.q(0, &["SET", key, "v1"]), ok(), "SET {key} v1");
    wait_for(Duration::from_secs(10), "v1 on all three replicas", || {
        for i in 0..3 {
            let l = c.local(i, key);
            if l.values != vec![some("v1")] {
                return Err(format!("{}: {l:?}", name(i)));
            }
        }
        Ok(())
    });

    c.cut(&[2], &[0, 1]);
    assert_eq!(
        c.q(0, &["SET", key, "v2"]),
        ok(),
        "SET {key} v2 (W=2) through n1 while n3 is cut off"
    );
    assert_eq!(
        c.local(2, key).values,
        vec![some("v1")],
        "n3 during the partition"
    );

    // Who keeps the hint for n3 (the coordinator: n1 or n2)?
    let holders: Vec<usize> =
        wait_for(Duration::from_secs(10), "a hint for n3 on n1 or n2", || {
            let mut holders = Vec::new();
            let mut seen = Vec::new();
            for i in [0, 1] {
                let h = c.hints(i)?;
                if h.get("n3").copied().unwrap_or(0) > 0 {
                    holders.push(i);
                }
                seen.push((name(i), h));
            }
            if holders.is_empty() {
                Err(format!("hints: {seen:?}"))
            } else {
                Ok(holders)
            }
        });
    assert_eq!(
        holders.len(),
        1,
        "both n1 and n2 hold hints for n3 after one write; the test cannot take hinted handoff out of the picture"
    );
    let holder = holders[0];
    let other = 1 - holder;
    c.kill9(holder);
    c.heal(&[other, 2]);

    let still = c.local(2, key);
    assert_eq!(
        still.values,
        vec![some("v1")],
        "n3 was repaired before any read (anti-entropy?), so read repair cannot be isolated"
    );
    let before = c.info_sum(&[other, 2], "read_repairs");
    let got = wait_for(
        Duration::from_secs(30),
        &format!("DYN.GET {key} (R=2) through {} to succeed", name(other)),
        || c.dyn_get(other, key, None),
    );
    assert_eq!(
        got.values,
        vec![some("v2")],
        "DYN.GET {key} through {}",
        name(other)
    );
    wait_for(Duration::from_secs(5), "read repair to give n3 v2", || {
        let l = c.local(2, key);
        if l.values == vec![some("v2")] {
            Ok(())
        } else {
            Err(format!("n3: {l:?}"))
        }
    });
    let after = c.info_sum(&[other, 2], "read_repairs");
    assert!(
        after > before,
        "INFO dynamo read_repairs on {} + n3 went {before} -> {after}; expected an increase",
        name(other)
    );

    c.restart(holder);
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
    wait_for(HANDOFF_TIMEOUT, "DYN.HINTS empty on every node", || {
        for i in 0..3 {
            let h = c.hints(i)?;
            if !h.is_empty() {
                return Err(format!("{}: {h:?}", name(i)));
            }
        }
        Ok(())
    });
    for i in 0..3 {
        assert_eq!(
            c.local(i, key).values,
            vec![some("v2")],
            "{key} on {} at the end",
            name(i)
        );
    }
}

// ---------------------------------------------------------------------------
// 7. restarts
// ---------------------------------------------------------------------------

type View = (Vec<(String, String, i64)>, BTreeMap<i64, Vec<String>>);

fn view(c: &Cluster, i: usize) -> View {
    let members = c
        .members(i)
        .expect("DYN.MEMBERS")
        .into_iter()
        .map(|m| (m.name, m.addr, m.partitions))
        .collect();
    (members, c.ring(i).expect("DYN.RING"))
}

fn stop_all(c: &mut Cluster) {
    for i in 0..c.size() {
        let status = c.nodes[i].terminate();
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM",
            name(i)
        );
    }
}

fn check_restart_view(c: &Cluster, before: &View, data: &[(String, String)]) {
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
    for i in 0..3 {
        let now = view(c, i);
        assert_eq!(now.0, before.0, "members on {} after the restart", name(i));
        assert!(
            now.1 == before.1,
            "the ring on {} changed across the restart",
            name(i)
        );
        let info = c.info(i).expect("INFO dynamo");
        assert_eq!(
            info.get("node_name"),
            Some(&name(i)),
            "identity of {}",
            name(i)
        );
    }
    for i in 0..3 {
        assert_none(
            &c.check_gets(i, data),
            &format!(
                "GET through {} after the restart (key, expected, got)",
                name(i)
            ),
        );
    }
}

#[test]
fn membership_survives_restart() {
    if is_real_redis() {
        return;
    }
    let mut c = Cluster::start(3);
    let data = kvs("rs", 1000);
    assert_none(&c.set_many(0, &data), "SET through n1");
    let before = view(&c, 0);

    stop_all(&mut c);
    // Same flags: n1 without --join, n2 and n3 with --join n1.
    for i in 0..3 {
        c.restart(i);
    }
    check_restart_view(&c, &before, &data);
}

/// Membership is persisted: nodes restarted without any
/// `--join`, in reverse order, still find each other.
#[test]
fn membership_survives_restart_without_join() {
    if is_real_redis() {
        return;
    }
    let mut c = Cluster::start(3);
    let data = kvs("rsj", 300);
    assert_none(&c.set_many(1, &data), "SET through n2");
    let before = view(&c, 0);

    stop_all(&mut c);
    for i in (0..3).rev() {
        let mut a: Vec<String> = Vec::new();
        let old = c.nodes[i].extra_args().to_vec();
        let mut it = old.into_iter();
        while let Some(x) = it.next() {
            if x == "--join" {
                it.next();
            } else {
                a.push(x);
            }
        }
        c.nodes[i].set_extra_args(&a);
        c.restart(i);
    }
    check_restart_view(&c, &before, &data);
}

// ---------------------------------------------------------------------------
// 8. sizes agree end to end
// ---------------------------------------------------------------------------

/// The largest value the client port accepts (`proto-max-bulk-len`, 32 MiB
/// by default) reaches every replica and comes back from every replica, and
/// the cluster carries on normally afterwards. Before the limits agreed, the
/// client port took 512 MB values that node-to-node frames (then 64 MiB)
/// could not carry: the write failed to replicate and later writes failed
/// too, because the peer was marked down.
#[test]
fn largest_client_value_replicates_and_later_writes_succeed() {
    if is_real_redis() {
        return;
    }
    const MAX: usize = 32 * 1024 * 1024;
    // W = R = N = 3: a write is acknowledged only once every replica has
    // it, and a read needs every replica's copy.
    let c = Cluster::start_with(3, (3, 3, 3), &["--fsync", "no"], |_| 0);
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);

    let value = vec![b'v'; MAX];
    let mut conn = c.conn(0);
    assert_eq!(
        conn.cmd(&[b"SET", b"big", &value]),
        ok(),
        "SET of {MAX} bytes"
    );
    for i in 0..3 {
        assert_eq!(
            c.q(i, &["STRLEN", "big"]),
            Reply::Int(MAX as i64),
            "STRLEN through {}",
            name(i)
        );
    }
    assert_eq!(
        c.conn(2).cmd(&[b"GET", b"big"]),
        Reply::Bulk(value),
        "GET through n3"
    );
    // One byte more is refused at the client port, as in Redis.
    let mut over = c.conn(1);
    over.send(format!("*3\r\n$3\r\nSET\r\n$4\r\nover\r\n${}\r\n", MAX + 1).as_bytes())
        .expect("send");
    assert_eq!(
        over.read().expect("reply"),
        Reply::Error("ERR Protocol error: invalid bulk length".into())
    );
    // Every peer is still reachable: W = 3 writes through each node work.
    for i in 0..3 {
        let key = format!("after:{i}");
        assert_eq!(c.q(i, &["SET", &key, "ok"]), ok(), "SET {key}");
        assert_eq!(
            c.q((i + 1) % 3, &["GET", &key]),
            Reply::Bulk(b"ok".to_vec())
        );
    }
}

/// Two concurrent maximal values make one object of twice the limit
/// (siblings), which must still travel between nodes once they merge: the
/// frames are sized for it (`MAX_FRAME_LEN`), and the node's RPC deadlines
/// grow with the payload, so moving 64 MiB does not look like a dead peer.
#[test]
fn maximal_siblings_travel_between_nodes() {
    if is_real_redis() {
        return;
    }
    const MAX: usize = 32 * 1024 * 1024;
    let c = Cluster::start_with(3, (3, 3, 3), &["--fsync", "no"], |_| 0);
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
    let key = "big:siblings";
    assert_eq!(c.q(0, &["SET", key, "base"]), ok(), "SET {key} base");
    let base = c
        .dyn_get(0, key, None)
        .unwrap_or_else(|e| panic!("DYN.GET {key}: {e}"));
    c.cut(&[0], &[1, 2]);
    for (i, fill) in [(0, b'l'), (1, b'r')] {
        let value = vec![fill; MAX];
        let put: [&[u8]; 6] = [
            b"DYN.PUT",
            key.as_bytes(),
            base.context.as_bytes(),
            &value,
            b"W",
            b"1",
        ];
        assert_eq!(c.conn(i).cmd(&put), ok(), "DYN.PUT through {}", name(i));
    }
    c.heal(&[0, 1, 2]);
    // With R = 3 every replica's copy, both siblings once merged, crosses
    // the network to the coordinator.
    wait_for(
        Duration::from_secs(60),
        "DYN.GET through every node to return both maximal siblings",
        || {
            for i in 0..3 {
                let reply = c.conn(i).cmd(&[b"DYN.GET", key.as_bytes()]);
                let lens = sibling_lens(&reply);
                if lens != Some(vec![MAX, MAX]) {
                    let error = match &reply {
                        Reply::Error(e) => e.clone(),
                        _ => String::new(),
                    };
                    return Err(format!("{}: sibling lengths {lens:?} {error}", name(i)));
                }
            }
            Ok(())
        },
    );
    for i in 0..3 {
        let key = format!("after-siblings:{i}");
        assert_eq!(c.q(i, &["SET", &key, "ok"]), ok(), "SET {key}");
    }
}

/// The value lengths of a `[context, [values]]` reply (without printing
/// megabytes when it is something else).
fn sibling_lens(reply: &Reply) -> Option<Vec<usize>> {
    let Reply::Array(fields) = reply else {
        return None;
    };
    let Some(Reply::Array(values)) = fields.get(1) else {
        return None;
    };
    values
        .iter()
        .map(|v| match v {
            Reply::Bulk(b) => Some(b.len()),
            _ => None,
        })
        .collect()
}
