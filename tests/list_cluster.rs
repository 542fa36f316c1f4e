//! Lists on a 3-node cluster:
//!
//! - a client blocked in BLPOP on one node is woken by an RPUSH through
//!   another;
//! - with W=1, R=1 and the cluster cut in two, RPUSHes through both sides
//!   all survive the heal, in the same order on every node;
//! - without a partition, 4 consumers popping through 3 different nodes
//!   while a producer pushes pop every element exactly once
//!   (`DYNKV_LIST_ELEMENTS`, 10,000 in `scripts/lists-full.sh`, 1,000 in
//!   CI).

mod common;

use common::Reply;
use common::cluster::{Cluster, name, wait_for, wait_until};
use std::collections::BTreeMap;
use std::time::Duration;

fn elements() -> usize {
    std::env::var("DYNKV_LIST_ELEMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

fn strings(r: &Reply) -> Vec<String> {
    match r {
        Reply::Array(items) => items.iter().map(Reply::as_str).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

fn blocked_clients(c: &Cluster, i: usize) -> i64 {
    common::cluster::parse_info(&c.q(i, &["INFO", "clients"]))
        .ok()
        .and_then(|info| info.get("blocked_clients")?.parse().ok())
        .unwrap_or(-1)
}

#[test]
fn a_blocked_pop_is_woken_by_a_push_through_another_node() {
    if common::is_real_redis() {
        return;
    }
    let c = Cluster::start(3);
    for round in 0..3 {
        let key = format!("wake:{round}");
        let mut blocked = c.conn(2);
        blocked
            .send(&common::encode(&[b"BLPOP", key.as_bytes(), b"0"]))
            .expect("send BLPOP");
        wait_until(Duration::from_secs(10), "the BLPOP to block", || {
            blocked_clients(&c, 2) == 1
        });
        c.ok(0, &["RPUSH", &key, "job"]);
        assert_eq!(
            blocked.read().expect("BLPOP's reply"),
            Reply::Array(vec![
                Reply::Bulk(key.clone().into_bytes()),
                Reply::Bulk(b"job".to_vec())
            ])
        );
        wait_until(Duration::from_secs(10), "the client to unblock", || {
            blocked_clients(&c, 2) == 0
        });
        // Popped once: nothing is left anywhere.
        for i in 0..3 {
            assert_eq!(c.q(i, &["LLEN", &key]), Reply::Int(0), "{}", name(i));
        }
    }
}

#[test]
fn pushes_on_both_sides_of_a_partition_all_survive_in_one_order() {
    if common::is_real_redis() {
        return;
    }
    let c = Cluster::start_with(3, (3, 1, 1), &["--fsync", "no"], |_| 0);
    c.wait_converged(&[0, 1, 2], Duration::from_secs(60));
    c.ok(0, &["RPUSH", "conv:list", "base"]);
    wait_for(
        Duration::from_secs(30),
        "the base element everywhere",
        || {
            for i in 0..3 {
                let got = strings(&c.q(i, &["LRANGE", "conv:list", "0", "-1"]));
                if got != ["base"] {
                    return Err(format!("{}: {got:?}", name(i)));
                }
            }
            Ok(())
        },
    );
    c.cut(&[0], &[1, 2]);
    let per_side = 50;
    for k in 0..per_side {
        c.ok(0, &["RPUSH", "conv:list", &format!("left-{k}")]);
        c.ok(1, &["RPUSH", "conv:list", &format!("right-{k}")]);
    }
    c.ok(2, &["LPUSH", "conv:list", "head"]);
    // The cut is real: node 1 does not see node 0's pushes yet.
    let during = strings(&c.q(0, &["LRANGE", "conv:list", "0", "-1"]));
    assert_eq!(during.len(), 1 + per_side, "{during:?}");
    c.heal(&[0, 1, 2]);
    let merged = wait_for(
        Duration::from_secs(90),
        "every node to show the same merged list",
        || {
            let lists: Vec<Vec<String>> = (0..3)
                .map(|i| strings(&c.q(i, &["LRANGE", "conv:list", "0", "-1"])))
                .collect();
            if lists[0].len() != 2 + 2 * per_side {
                return Err(format!("{}: {} elements", name(0), lists[0].len()));
            }
            if lists.iter().any(|l| *l != lists[0]) {
                return Err("nodes disagree on the order".into());
            }
            Ok(lists[0].clone())
        },
    );
    assert_eq!(merged[0], "head");
    assert_eq!(merged[1], "base");
    for side in ["left", "right"] {
        let order: Vec<&String> = merged.iter().filter(|e| e.starts_with(side)).collect();
        let want: Vec<String> = (0..per_side).map(|k| format!("{side}-{k}")).collect();
        assert_eq!(
            order,
            want.iter().collect::<Vec<_>>(),
            "{side} keeps its push order"
        );
    }
}

#[test]
fn four_consumers_through_three_nodes_pop_every_element_once() {
    if common::is_real_redis() {
        return;
    }
    let c = Cluster::start(3);
    let total = elements();
    let mut popped: Vec<String> = std::thread::scope(|s| {
        let c = &c;
        s.spawn(move || {
            let mut conn = c.conn(1);
            for batch in (0..total).collect::<Vec<_>>().chunks(50) {
                let mut args = vec!["RPUSH".to_string(), "jobs".to_string()];
                args.extend(batch.iter().map(|k| format!("job-{k}")));
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                let r = conn.cmd_str(&refs);
                assert!(matches!(r, Reply::Int(_)), "RPUSH: {r:?}");
            }
            c.ok(1, &["SET", "jobs:pushed", "1"]);
        });
        let consumers: Vec<_> = [0, 1, 2, 0]
            .into_iter()
            .enumerate()
            .map(|(who, node)| {
                s.spawn(move || {
                    let mut conn = c.conn(node);
                    let mut got = Vec::new();
                    loop {
                        // Two consumers block, two poll.
                        let r = if who % 2 == 0 {
                            conn.cmd_str(&["BLPOP", "jobs", "1"])
                        } else {
                            conn.cmd_str(&["LPOP", "jobs"])
                        };
                        match r {
                            Reply::Array(kv) => got.push(kv[1].as_str()),
                            Reply::Bulk(b) => got.push(String::from_utf8_lossy(&b).into_owned()),
                            Reply::Nil => {
                                let done =
                                    conn.cmd_str(&["EXISTS", "jobs:pushed"]) == Reply::Int(1);
                                if done && conn.cmd_str(&["LLEN", "jobs"]) == Reply::Int(0) {
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            other => panic!("consumer {who} on {}: {other:?}", name(node)),
                        }
                    }
                    got
                })
            })
            .collect();
        consumers
            .into_iter()
            .flat_map(|h| h.join().expect("consumer"))
            .collect()
    });
    // Whatever a stale LLEN let the consumers leave behind.
    loop {
        match c.q(0, &["LPOP", "jobs"]) {
            Reply::Bulk(b) => popped.push(String::from_utf8_lossy(&b).into_owned()),
            Reply::Nil => break,
            other => panic!("drain: {other:?}"),
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &popped {
        *seen.entry(e.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "popped more than once: {twice:?}");
    assert_eq!(seen.len(), total, "every pushed element popped");
    for k in 0..total {
        assert!(
            seen.contains_key(format!("job-{k}").as_str()),
            "job-{k} lost"
        );
    }
}
