//! Lists on one real node: every list command with redis-server's reply
//! shapes and error texts (`DYNKV_TEST_AGAINST=redis` checks the same
//! assertions against it), RESP3 nulls, 100,000-byte elements, and the
//! blocking pops: woken by a push from another connection, timing out
//! with nil, non-blocking inside MULTI, and giving up when the blocked
//! client disconnects.

mod common;

use common::{Reply, Server, err, q};
use std::time::Duration;

const WRONGTYPE: &str = "WRONGTYPE";

fn range(c: &mut redis::Connection, key: &str) -> Vec<String> {
    q(c, &["LRANGE", key, "0", "-1"])
}

#[test]
fn pushes_pops_and_ranges() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["RPUSH", "l", "b", "c"]), 2);
    assert_eq!(q::<i64>(&mut c, &["LPUSH", "l", "a", "z"]), 4);
    assert_eq!(range(&mut c, "l"), ["z", "a", "b", "c"]);
    assert_eq!(q::<i64>(&mut c, &["LLEN", "l"]), 4);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "1", "2"]),
        ["a", "b"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "-2", "100"]),
        ["b", "c"]
    );
    assert!(q::<Vec<String>>(&mut c, &["LRANGE", "l", "3", "1"]).is_empty());
    assert!(q::<Vec<String>>(&mut c, &["LRANGE", "l", "9", "10"]).is_empty());
    assert!(q::<Vec<String>>(&mut c, &["LRANGE", "nope", "0", "-1"]).is_empty());
    assert_eq!(q::<String>(&mut c, &["LINDEX", "l", "-1"]), "c");
    assert_eq!(q::<Option<String>>(&mut c, &["LINDEX", "l", "4"]), None);
    assert_eq!(q::<Option<String>>(&mut c, &["LINDEX", "nope", "0"]), None);
    assert_eq!(q::<i64>(&mut c, &["LPUSHX", "nope", "x"]), 0);
    assert_eq!(q::<i64>(&mut c, &["RPUSHX", "nope", "x"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "nope"]), 0);
    assert_eq!(q::<i64>(&mut c, &["RPUSHX", "l", "d"]), 5);
    assert_eq!(q::<String>(&mut c, &["LPOP", "l"]), "z");
    assert_eq!(q::<String>(&mut c, &["RPOP", "l"]), "d");
    assert_eq!(q::<Vec<String>>(&mut c, &["LPOP", "l", "2"]), ["a", "b"]);
    assert!(q::<Vec<String>>(&mut c, &["RPOP", "l", "0"]).is_empty());
    assert_eq!(q::<Vec<String>>(&mut c, &["RPOP", "l", "5"]), ["c"]);
    // The last pop deleted the key.
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "l"]), 0);
    assert_eq!(q::<String>(&mut c, &["TYPE", "l"]), "none");
    assert_eq!(q::<Option<String>>(&mut c, &["LPOP", "l"]), None);
    assert_eq!(q::<Option<Vec<String>>>(&mut c, &["LPOP", "l", "2"]), None);
    assert!(err(&mut c, &["LPOP", "l", "-1"]).contains("value is out of range, must be positive"));
    assert!(err(&mut c, &["LPOP", "l", "1", "2"]).contains("wrong number of arguments for 'lpop'"));
    assert!(err(&mut c, &["LPUSH", "l"]).contains("wrong number of arguments for 'lpush'"));
    assert!(
        err(&mut c, &["LRANGE", "l", "a", "1"]).contains("value is not an integer or out of range")
    );
    // WRONGTYPE both ways.
    q::<()>(&mut c, &["SET", "str", "x"]);
    assert!(err(&mut c, &["LPUSH", "str", "a"]).contains(WRONGTYPE));
    assert!(err(&mut c, &["LPUSHX", "str", "a"]).contains(WRONGTYPE));
    assert!(err(&mut c, &["LLEN", "str"]).contains(WRONGTYPE));
    assert!(err(&mut c, &["LPOP", "str"]).contains(WRONGTYPE));
    q::<i64>(&mut c, &["RPUSH", "l", "x"]);
    assert!(err(&mut c, &["GET", "l"]).contains(WRONGTYPE));
    assert!(err(&mut c, &["SADD", "l", "m"]).contains(WRONGTYPE));
    assert_eq!(q::<String>(&mut c, &["TYPE", "l"]), "list");
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "l"]),
        "quicklist"
    );
    // 100,000-byte elements.
    let big = "e".repeat(100_000);
    assert_eq!(q::<i64>(&mut c, &["RPUSH", "l", &big]), 2);
    assert_eq!(q::<String>(&mut c, &["LINDEX", "l", "1"]), big);
    assert_eq!(q::<String>(&mut c, &["RPOP", "l"]), big);
    assert_eq!(q::<i64>(&mut c, &["DEL", "l"]), 1);
    assert_eq!(q::<i64>(&mut c, &["LLEN", "l"]), 0);
}

#[test]
fn edits_in_the_middle() {
    let s = Server::start();
    let mut c = s.conn();
    q::<i64>(&mut c, &["RPUSH", "l", "a", "b", "a", "c", "a"]);
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "l", "BEFORE", "c", "bc"]), 6);
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "l", "after", "c", "cd"]), 7);
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "l", "AFTER", "zz", "x"]), -1);
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "nope", "AFTER", "a", "x"]), 0);
    assert!(err(&mut c, &["LINSERT", "l", "NEAR", "a", "x"]).contains("syntax error"));
    assert_eq!(range(&mut c, "l"), ["a", "b", "a", "bc", "c", "cd", "a"]);
    assert_eq!(q::<i64>(&mut c, &["LPOS", "l", "a"]), 0);
    assert_eq!(q::<i64>(&mut c, &["LPOS", "l", "a", "RANK", "2"]), 2);
    assert_eq!(q::<i64>(&mut c, &["LPOS", "l", "a", "RANK", "-1"]), 6);
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["LPOS", "l", "a", "COUNT", "0"]),
        [0, 2, 6]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["LPOS", "l", "a", "COUNT", "2", "RANK", "-1"]),
        [6, 2]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["LPOS", "l", "a", "COUNT", "0", "MAXLEN", "3"]),
        [0, 2]
    );
    assert_eq!(q::<Option<i64>>(&mut c, &["LPOS", "l", "zz"]), None);
    assert!(q::<Vec<i64>>(&mut c, &["LPOS", "nope", "a", "COUNT", "1"]).is_empty());
    assert!(err(&mut c, &["LPOS", "l", "a", "RANK", "0"]).contains("RANK can't be zero"));
    assert!(err(&mut c, &["LPOS", "l", "a", "COUNT", "-1"]).contains("COUNT can't be negative"));
    assert!(err(&mut c, &["LPOS", "l", "a", "MAXLEN", "-1"]).contains("MAXLEN can't be negative"));
    assert!(err(&mut c, &["LPOS", "l", "a", "WHAT", "1"]).contains("syntax error"));
    q::<()>(&mut c, &["LSET", "l", "-1", "last"]);
    q::<()>(&mut c, &["LSET", "l", "0", "first"]);
    assert!(err(&mut c, &["LSET", "l", "7", "x"]).contains("index out of range"));
    assert!(err(&mut c, &["LSET", "nope", "0", "x"]).contains("no such key"));
    assert_eq!(
        range(&mut c, "l"),
        ["first", "b", "a", "bc", "c", "cd", "last"]
    );
    q::<i64>(&mut c, &["RPUSH", "l", "b", "b"]);
    assert_eq!(q::<i64>(&mut c, &["LREM", "l", "-2", "b"]), 2);
    assert_eq!(q::<i64>(&mut c, &["LREM", "l", "1", "nope"]), 0);
    assert_eq!(
        range(&mut c, "l"),
        ["first", "b", "a", "bc", "c", "cd", "last"]
    );
    q::<i64>(&mut c, &["RPUSH", "l", "b"]);
    assert_eq!(q::<i64>(&mut c, &["LREM", "l", "0", "b"]), 2);
    q::<()>(&mut c, &["LTRIM", "l", "1", "-2"]);
    assert_eq!(range(&mut c, "l"), ["a", "bc", "c", "cd"]);
    q::<()>(&mut c, &["LTRIM", "l", "-100", "1"]);
    assert_eq!(range(&mut c, "l"), ["a", "bc"]);
    q::<()>(&mut c, &["LTRIM", "l", "5", "10"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "l"]), 0);
    q::<()>(&mut c, &["LTRIM", "nope", "0", "1"]);
}

#[test]
fn moves_between_lists() {
    let s = Server::start();
    let mut c = s.conn();
    q::<i64>(&mut c, &["RPUSH", "src", "1", "2", "3"]);
    assert_eq!(
        q::<String>(&mut c, &["LMOVE", "src", "dst", "LEFT", "RIGHT"]),
        "1"
    );
    assert_eq!(
        q::<String>(&mut c, &["LMOVE", "src", "dst", "RIGHT", "LEFT"]),
        "3"
    );
    assert_eq!(range(&mut c, "dst"), ["3", "1"]);
    assert_eq!(q::<String>(&mut c, &["RPOPLPUSH", "dst", "dst"]), "1");
    assert_eq!(range(&mut c, "dst"), ["1", "3"]);
    assert_eq!(q::<String>(&mut c, &["RPOPLPUSH", "src", "dst"]), "2");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "src"]), 0);
    assert_eq!(
        q::<Option<String>>(&mut c, &["LMOVE", "src", "dst", "LEFT", "LEFT"]),
        None
    );
    assert!(err(&mut c, &["LMOVE", "dst", "x", "UP", "LEFT"]).contains("syntax error"));
    q::<()>(&mut c, &["SET", "str", "x"]);
    assert!(err(&mut c, &["LMOVE", "dst", "str", "LEFT", "LEFT"]).contains(WRONGTYPE));
    // The WRONGTYPE destination left the source alone.
    assert_eq!(range(&mut c, "dst"), ["2", "1", "3"]);
    // An absent source answers nil before the destination's type is read.
    assert_eq!(
        q::<Option<String>>(&mut c, &["LMOVE", "none", "str", "LEFT", "LEFT"]),
        None
    );

    assert_eq!(
        q::<(String, Vec<String>)>(
            &mut c,
            &["LMPOP", "2", "none", "dst", "RIGHT", "COUNT", "2"]
        ),
        ("dst".into(), vec!["3".into(), "1".into()])
    );
    assert_eq!(
        q::<(String, Vec<String>)>(&mut c, &["LMPOP", "1", "dst", "LEFT"]),
        ("dst".into(), vec!["2".into()])
    );
    assert_eq!(
        q::<Option<Vec<String>>>(&mut c, &["LMPOP", "1", "dst", "LEFT"]),
        None
    );
    assert!(
        err(&mut c, &["LMPOP", "0", "dst", "LEFT"]).contains("numkeys should be greater than 0")
    );
    assert!(err(&mut c, &["LMPOP", "3", "a", "LEFT"]).contains("syntax error"));
    assert!(
        err(&mut c, &["LMPOP", "1", "a", "LEFT", "COUNT", "0"])
            .contains("count should be greater than 0")
    );
    assert!(err(&mut c, &["LMPOP", "1", "a", "MIDDLE"]).contains("syntax error"));
}

#[test]
fn resp3_nulls() {
    let s = Server::start();
    let mut c = s.raw();
    assert!(matches!(c.cmd_str(&["HELLO", "3"]), Reply::Map(_)));
    assert_eq!(c.cmd_str(&["LPOP", "none"]), Reply::Nil);
    assert_eq!(c.cmd_str(&["LPOP", "none", "3"]), Reply::Nil);
    assert_eq!(c.cmd_str(&["BLPOP", "none", "0.01"]), Reply::Nil);
    assert_eq!(c.cmd_str(&["RPUSH", "l", "a"]), Reply::Int(1));
    assert_eq!(
        c.cmd_str(&["LPOP", "l", "3"]),
        Reply::Array(vec![Reply::Bulk(b"a".to_vec())])
    );
}

#[test]
fn blocking_pops_wait_for_a_push() {
    let s = Server::start();
    let mut c = s.conn();
    // Nothing there: nil after the timeout; bad timeouts refused.
    assert_eq!(
        q::<Option<Vec<String>>>(&mut c, &["BLPOP", "q1", "q2", "0.05"]),
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["BLMOVE", "q1", "d", "LEFT", "LEFT", "0.05"]),
        None
    );
    assert!(err(&mut c, &["BLPOP", "q1", "-1"]).contains("timeout is negative"));
    assert!(
        err(&mut c, &["BLPOP", "q1", "soon"]).contains("timeout is not a float or out of range")
    );
    // Something there: answers at once, from the first non-empty key.
    q::<i64>(&mut c, &["RPUSH", "q2", "x", "y"]);
    assert_eq!(
        q::<(String, String)>(&mut c, &["BLPOP", "q1", "q2", "1"]),
        ("q2".into(), "x".into())
    );
    assert_eq!(
        q::<(String, String)>(&mut c, &["BRPOP", "q2", "1"]),
        ("q2".into(), "y".into())
    );
    q::<()>(&mut c, &["SET", "str", "v"]);
    assert!(err(&mut c, &["BLPOP", "str", "1"]).contains(WRONGTYPE));

    // Blocked, then woken by a push from another connection.
    let waiters: Vec<_> = [
        vec!["BLPOP", "w1", "0"],
        vec!["BRPOPLPUSH", "w2", "w2-done", "0"],
        vec!["BLMPOP", "0", "2", "w3", "w4", "LEFT", "COUNT", "5"],
        vec!["BLMOVE", "w5", "w5-done", "RIGHT", "LEFT", "0"],
    ]
    .into_iter()
    .map(|args| {
        let mut conn = s.raw();
        let encoded: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        conn.send(&common::encode(&encoded)).expect("send");
        conn
    })
    .collect();
    // All four blocked before anything is pushed.
    common::cluster::wait_until(Duration::from_secs(10), "four blocked clients", || {
        let info: String = q(&mut c, &["INFO", "clients"]);
        info.contains("blocked_clients:4")
    });
    q::<i64>(&mut c, &["RPUSH", "w1", "one"]);
    q::<i64>(&mut c, &["RPUSH", "w2", "two"]);
    q::<i64>(&mut c, &["RPUSH", "w4", "a", "b"]);
    q::<i64>(&mut c, &["RPUSH", "w5", "p", "five"]);
    let mut got: Vec<Reply> = waiters
        .into_iter()
        .map(|mut conn| conn.read().expect("the blocked reply"))
        .collect();
    let bulk = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
    assert_eq!(got.remove(0), Reply::Array(vec![bulk("w1"), bulk("one")]));
    assert_eq!(got.remove(0), bulk("two"));
    assert_eq!(
        got.remove(0),
        Reply::Array(vec![bulk("w4"), Reply::Array(vec![bulk("a"), bulk("b")])])
    );
    assert_eq!(got.remove(0), bulk("five"));
    assert_eq!(range(&mut c, "w2-done"), ["two"]);
    assert_eq!(range(&mut c, "w5-done"), ["five"]);
    assert_eq!(range(&mut c, "w5"), ["p"]);
}

#[test]
fn blocking_pops_inside_multi_do_not_block_and_a_gone_client_stops_waiting() {
    let s = Server::start();
    let mut c = s.raw();
    assert_eq!(c.cmd_str(&["MULTI"]), Reply::Simple("OK".into()));
    assert_eq!(
        c.cmd_str(&["BLPOP", "empty", "0"]),
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(c.cmd_str(&["EXEC"]), Reply::Array(vec![Reply::Nil]));

    let mut blocked = s.raw();
    blocked
        .send(&common::encode(&[b"BLPOP", b"gone", b"0"]))
        .expect("send");
    let mut admin = s.conn();
    common::cluster::wait_until(Duration::from_secs(10), "one blocked client", || {
        let info: String = q(&mut admin, &["INFO", "clients"]);
        info.contains("blocked_clients:1")
    });
    drop(blocked);
    common::cluster::wait_until(Duration::from_secs(10), "no blocked client", || {
        let info: String = q(&mut admin, &["INFO", "clients"]);
        info.contains("blocked_clients:0")
    });
    // The element pushed after the client left stays in the list.
    q::<i64>(&mut admin, &["RPUSH", "gone", "kept"]);
    assert_eq!(range(&mut admin, "gone"), ["kept"]);
}
