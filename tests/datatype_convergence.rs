//! Redis data types converge across a partition: a 3-node cluster with
//! W=1, R=1, every node cut off from the other two with `DYN.DEBUG
//! PARTITION`, writes of each type through different nodes, then the heal.
//! Every node must then answer the merged value:
//!
//! - INCRBY through three nodes sums (3 clients × `DYNKV_CONVERGE_OPS`,
//!   1,000 in the full run of `scripts/datatypes-full.sh`, 200 in CI);
//! - HSET of different fields keeps all of them; HSET of one field shows
//!   one value everywhere;
//! - SADD concurrent with SREM of the same member keeps it;
//! - ZINCRBY through two nodes sums;
//! - a key written as a hash on one side and as a string (later) on the
//!   other is the string everywhere: the latest write's type wins.

mod common;

use common::Reply;
use common::cluster::{Cluster, name, wait_for};
use std::time::Duration;

const HEAL_TIMEOUT: Duration = Duration::from_secs(90);

fn ops() -> usize {
    std::env::var("DYNKV_CONVERGE_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn int(r: &Reply) -> Option<i64> {
    match r {
        Reply::Int(i) => Some(*i),
        Reply::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn strings(r: &Reply) -> Vec<String> {
    match r {
        Reply::Array(items) | Reply::Set(items) => {
            let mut v: Vec<String> = items.iter().map(Reply::as_str).collect();
            v.sort();
            v
        }
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn data_types_merge_after_a_full_partition_heals() {
    if common::is_real_redis() {
        return;
    }
    let c = Cluster::start_with(3, (3, 1, 1), &["--fsync", "no"], |_| 0);
    c.wait_converged(&[0, 1, 2], Duration::from_secs(60));

    // Written before the cut and on every replica before it.
    c.ok(0, &["SADD", "conv:set", "m", "keep"]);
    c.ok(0, &["ZADD", "conv:z", "1", "m"]);
    wait_for(
        Duration::from_secs(30),
        "the base set and zset everywhere",
        || {
            for i in 0..3 {
                let members = strings(&c.q(i, &["SMEMBERS", "conv:set"]));
                let score = c.q(i, &["ZSCORE", "conv:z", "m"]);
                if members != ["keep", "m"] || score.as_str() != "1" {
                    return Err(format!("{}: {members:?} {score:?}", name(i)));
                }
            }
            Ok(())
        },
    );

    for i in 0..3 {
        let others: Vec<usize> = (0..3).filter(|&j| j != i).collect();
        c.partition(i, &others);
    }

    let n = ops();
    std::thread::scope(|s| {
        for i in 0..3 {
            let c = &c;
            s.spawn(move || {
                let mut conn = c.conn(i);
                for k in 0..n {
                    let r = conn.cmd_str(&["INCRBY", "conv:counter", "1"]);
                    assert!(int(&r).is_some(), "INCRBY #{k} through {}: {r:?}", name(i));
                }
            });
        }
    });
    for i in 0..3 {
        let field = format!("f{i}");
        let value = format!("v{i}");
        c.ok(i, &["HSET", "conv:hash", &field, &value]);
        c.ok(i, &["HSET", "conv:one-field", "f", &value]);
    }
    c.ok(0, &["SREM", "conv:set", "m"]);
    c.ok(1, &["SADD", "conv:set", "m"]);
    c.ok(0, &["ZINCRBY", "conv:z", "5", "m"]);
    c.ok(1, &["ZINCRBY", "conv:z", "7", "m"]);
    c.ok(0, &["HSET", "conv:typed", "f", "v"]);
    // Strictly later, so the string is the latest write.
    std::thread::sleep(Duration::from_millis(20));
    c.ok(1, &["SET", "conv:typed", "the-string"]);

    // The cut is real: each node sees only its own increments.
    for i in 0..3 {
        let r = c.q(i, &["GET", "conv:counter"]);
        assert_eq!(int(&r), Some(n as i64), "{} during the partition", name(i));
    }

    c.heal(&[0, 1, 2]);
    let expected_counter = 3 * n as i64;
    wait_for(
        HEAL_TIMEOUT,
        "every node to answer the merged values",
        || {
            let mut one_field = Vec::new();
            for i in 0..3 {
                let who = name(i);
                let counter = c.q(i, &["GET", "conv:counter"]);
                if int(&counter) != Some(expected_counter) {
                    return Err(format!(
                        "{who}: counter {counter:?}, want {expected_counter}"
                    ));
                }
                let fields = strings(&c.q(i, &["HKEYS", "conv:hash"]));
                if fields != ["f0", "f1", "f2"] {
                    return Err(format!("{who}: hash fields {fields:?}"));
                }
                one_field.push(c.q(i, &["HGET", "conv:one-field", "f"]).as_str());
                let members = strings(&c.q(i, &["SMEMBERS", "conv:set"]));
                if members != ["keep", "m"] {
                    return Err(format!("{who}: set {members:?}"));
                }
                let score = c.q(i, &["ZSCORE", "conv:z", "m"]);
                if score.as_str() != "13" {
                    return Err(format!("{who}: ZSCORE {score:?}, want 1 + 5 + 7"));
                }
                let typed = c.q(i, &["GET", "conv:typed"]);
                if typed != Reply::Bulk(b"the-string".to_vec()) {
                    return Err(format!("{who}: conv:typed {typed:?}"));
                }
                let kind = c.q(i, &["TYPE", "conv:typed"]);
                if kind != Reply::Simple("string".into()) {
                    return Err(format!("{who}: TYPE conv:typed {kind:?}"));
                }
            }
            one_field.dedup();
            if one_field.len() != 1 || !one_field[0].starts_with('v') {
                return Err(format!("one field shows {one_field:?} across nodes"));
            }
            Ok(())
        },
    );
}
