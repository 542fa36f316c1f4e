//! SELECT's databases and MULTI/EXEC/WATCH on a 3-node cluster (N=3, R=2,
//! W=2): a database is a namespace of the one replicated keyspace, so every
//! node serves every database, and a WATCH sees writes made through other
//! nodes because its reads are quorum reads.

mod common;

use common::Reply;
use common::cluster::Cluster;

#[test]
fn databases_and_transactions_span_the_cluster() {
    if common::is_real_redis() {
        return;
    }
    let c = Cluster::start(3);
    let mut a = c.conn(0);
    let mut b = c.conn(2);
    assert_eq!(a.cmd_str(&["SET", "k", "zero"]).as_str(), "OK");
    assert_eq!(a.cmd_str(&["SELECT", "1"]).as_str(), "OK");
    assert_eq!(a.cmd_str(&["SET", "k", "one"]).as_str(), "OK");
    assert_eq!(a.cmd_str(&["SADD", "s", "x"]), Reply::Int(1));
    assert_eq!(b.cmd_str(&["SELECT", "1"]).as_str(), "OK");
    assert_eq!(b.cmd_str(&["GET", "k"]).as_str(), "one");
    assert_eq!(b.cmd_str(&["SISMEMBER", "s", "x"]), Reply::Int(1));
    assert_eq!(c.q(1, &["GET", "k"]).as_str(), "zero", "db 0 is its own");

    // A transaction through another node, in database 1.
    let mut t = c.conn(1);
    t.cmd_str(&["SELECT", "1"]);
    assert_eq!(t.cmd_str(&["MULTI"]).as_str(), "OK");
    assert_eq!(t.cmd_str(&["INCR", "n"]).as_str(), "QUEUED");
    assert_eq!(t.cmd_str(&["INCR", "n"]).as_str(), "QUEUED");
    assert_eq!(
        t.cmd_str(&["EXEC"]),
        Reply::Array(vec![Reply::Int(1), Reply::Int(2)])
    );
    assert_eq!(b.cmd_str(&["GET", "n"]).as_str(), "2");

    // WATCH on one node notices a write made through another.
    assert_eq!(a.cmd_str(&["WATCH", "n"]).as_str(), "OK");
    assert_eq!(b.cmd_str(&["INCR", "n"]), Reply::Int(3));
    a.cmd_str(&["MULTI"]);
    a.cmd_str(&["SET", "n", "0"]);
    assert_eq!(a.cmd_str(&["EXEC"]), Reply::Nil);
    assert_eq!(b.cmd_str(&["GET", "n"]).as_str(), "3");

    // FLUSHDB in database 1 leaves database 0 on every node.
    assert_eq!(b.cmd_str(&["FLUSHDB"]).as_str(), "OK");
    for i in 0..3 {
        let mut one = c.conn(i);
        one.cmd_str(&["SELECT", "1"]);
        assert_eq!(one.cmd_str(&["GET", "k"]), Reply::Nil, "node {i}");
        assert_eq!(c.q(i, &["GET", "k"]).as_str(), "zero", "node {i}");
    }
}

/// A script run through one node reads and writes keys whose replicas are
/// elsewhere, and what it wrote is what every other node reads.
#[test]
fn scripts_reach_keys_on_every_node() {
    if common::is_real_redis() {
        return;
    }
    let c = Cluster::start(3);
    let mut a = c.conn(0);
    let script = "for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1] .. i) end \
                  return redis.call('MGET', unpack(KEYS))";
    let keys: Vec<String> = (0..20).map(|i| format!("script-key-{i}")).collect();
    let mut args = vec!["EVAL", script, "20"];
    args.extend(keys.iter().map(String::as_str));
    args.push("v");
    let Reply::Array(values) = a.cmd_str(&args) else {
        panic!("EVAL did not answer an array");
    };
    assert_eq!(values.len(), 20);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(values[i].as_str(), format!("v{}", i + 1));
        for node in 1..3 {
            assert_eq!(c.q(node, &["GET", key]).as_str(), format!("v{}", i + 1));
        }
    }
    // A script loaded on one node is that node's: others answer NOSCRIPT,
    // which clients meet by loading it there.
    let sha = a.cmd_str(&["SCRIPT", "LOAD", "return 7"]).as_str();
    assert!(
        c.q(1, &["EVALSHA", &sha, "0"])
            .as_str()
            .starts_with("NOSCRIPT")
    );
    assert_eq!(a.cmd_str(&["EVALSHA", &sha, "0"]), Reply::Int(7));
}
