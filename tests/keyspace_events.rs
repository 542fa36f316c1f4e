//! Keyspace notifications (`notify-keyspace-events`): the `__keyspace@` and
//! `__keyevent@` messages of string, generic and expiry events on one real
//! node, exactly as redis-server sends them (`DYNKV_TEST_AGAINST=redis`),
//! and on a 3-node cluster a subscriber on node 3 getting the events of
//! writes made through nodes 1 and 2, with one `expired` per expiry though
//! every replica expires its own copy.

mod common;

use common::cluster::Cluster;
use common::{RawConn, Reply, Server};
use std::time::Duration;

/// (channel, message) of a pushed `message` or `pmessage`.
fn next_message(sub: &mut RawConn) -> (String, String) {
    let reply = sub.read().expect("a keyspace notification");
    let Reply::Array(items) = reply else {
        panic!("not a push: {reply:?}");
    };
    let text = |r: &Reply| match r {
        Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk: {other:?}"),
    };
    match items.len() {
        3 => (text(&items[1]), text(&items[2])),
        4 => (text(&items[2]), text(&items[3])),
        _ => panic!("unexpected push {items:?}"),
    }
}

fn expect(sub: &mut RawConn, expected: &[(&str, &str)]) {
    for (channel, message) in expected {
        assert_eq!(
            next_message(sub),
            (channel.to_string(), message.to_string()),
            "notification"
        );
    }
}

#[test]
fn string_generic_and_expiry_events_as_in_redis() {
    let s = Server::start();
    let mut admin = s.raw();
    assert_eq!(
        admin.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "Kg$xe"]),
        Reply::Simple("OK".into())
    );
    let got = admin.cmd_str(&["CONFIG", "GET", "notify-keyspace-events"]);
    assert_eq!(
        got,
        Reply::Array(vec![
            Reply::Bulk(b"notify-keyspace-events".to_vec()),
            Reply::Bulk(b"g$xeK".to_vec())
        ])
    );
    let bad = admin.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "Kq"]);
    assert!(
        bad.as_str().contains("Invalid event class character"),
        "{bad:?}"
    );

    let mut sub = s.raw();
    sub.set_read_timeout(Duration::from_secs(20));
    sub.cmd_str(&["PSUBSCRIBE", "__keyspace@0__:*"]);
    sub.cmd_str(&["SUBSCRIBE", "done"]);
    let mut c = s.raw();
    c.cmd_str(&["SET", "a", "1"]);
    // Refused writes say nothing.
    c.cmd_str(&["SET", "a", "2", "NX"]);
    c.cmd_str(&["SADD", "ignored-class", "m"]);
    c.cmd_str(&["APPEND", "a", "x"]);
    c.cmd_str(&["INCRBY", "n", "5"]);
    c.cmd_str(&["DEL", "a", "missing"]);
    c.cmd_str(&["RENAME", "n", "m"]);
    c.cmd_str(&["EXPIRE", "m", "100"]);
    c.cmd_str(&["PERSIST", "m"]);
    c.cmd_str(&["MSET", "p", "1", "q", "2"]);
    // An expiry already past deletes the key: `del`, not `expire`.
    c.cmd_str(&["EXPIRE", "q", "0"]);
    expect(
        &mut sub,
        &[
            ("__keyspace@0__:a", "set"),
            ("__keyspace@0__:a", "append"),
            ("__keyspace@0__:n", "incrby"),
            ("__keyspace@0__:a", "del"),
            ("__keyspace@0__:n", "rename_from"),
            ("__keyspace@0__:m", "rename_to"),
            ("__keyspace@0__:m", "expire"),
            ("__keyspace@0__:m", "persist"),
            ("__keyspace@0__:p", "set"),
            ("__keyspace@0__:q", "set"),
            ("__keyspace@0__:q", "del"),
        ],
    );
    // A value with a TTL: set, expire, and once it is gone, expired.
    c.cmd_str(&["SET", "t", "v", "PX", "100"]);
    expect(
        &mut sub,
        &[
            ("__keyspace@0__:t", "set"),
            ("__keyspace@0__:t", "expire"),
            ("__keyspace@0__:t", "expired"),
        ],
    );
    // Turned off: nothing more before the marker.
    admin.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", ""]);
    c.cmd_str(&["SET", "a", "3"]);
    c.cmd_str(&["PUBLISH", "done", "marker"]);
    assert_eq!(next_message(&mut sub), ("done".into(), "marker".into()));
}

/// The type classes (`l`, `s`, `h`, `z`) name their events as Redis does,
/// through `__keyevent@` channels (message: the key), with the `del` of a
/// collection a removal emptied.
#[test]
fn collection_events_as_in_redis() {
    let s = Server::start();
    let mut admin = s.raw();
    admin.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "Eglshz"]);
    let mut sub = s.raw();
    sub.set_read_timeout(Duration::from_secs(20));
    sub.cmd_str(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    let mut c = s.raw();
    for cmd in [
        &["RPUSH", "l", "a", "b", "c"][..],
        &["LPUSH", "l", "z"],
        &["LPOP", "l"],
        &["RPOP", "l"],
        &["LSET", "l", "0", "x"],
        &["LINSERT", "l", "BEFORE", "x", "w"],
        &["LREM", "l", "1", "w"],
        &["LTRIM", "l", "0", "5"],
        &["LMOVE", "l", "l2", "LEFT", "RIGHT"],
        &["HSET", "h", "f", "1"],
        &["HINCRBY", "h", "n", "2"],
        &["HDEL", "h", "f", "nope"],
        &["SADD", "s", "m", "n"],
        &["SREM", "s", "m"],
        &["SMOVE", "s", "s2", "n"],
        &["ZADD", "z", "1", "a", "2", "b"],
        &["ZINCRBY", "z", "5", "a"],
        &["ZREM", "z", "a"],
        &["ZPOPMIN", "z"],
        // Changing nothing emits nothing.
        &["SREM", "s", "absent"],
        &["HDEL", "h", "absent"],
        &["LPOP", "missing"],
    ] {
        let reply = c.cmd_str(cmd);
        assert!(!reply.is_error(), "{cmd:?}: {reply:?}");
    }
    c.cmd_str(&["SADD", "last", "x"]);
    let wanted = [
        ("rpush", "l"),
        ("lpush", "l"),
        ("lpop", "l"),
        ("rpop", "l"),
        ("lset", "l"),
        ("linsert", "l"),
        ("lrem", "l"),
        ("ltrim", "l"),
        ("rpush", "l2"),
        ("lpop", "l"),
        ("hset", "h"),
        ("hincrby", "h"),
        ("hdel", "h"),
        ("sadd", "s"),
        ("srem", "s"),
        ("srem", "s"),
        ("del", "s"),
        ("sadd", "s2"),
        ("zadd", "z"),
        ("zincr", "z"),
        ("zrem", "z"),
        ("zpopmin", "z"),
        ("del", "z"),
        ("sadd", "last"),
    ];
    let expected: Vec<(String, String)> = wanted
        .iter()
        .map(|(event, key)| (format!("__keyevent@0__:{event}"), key.to_string()))
        .collect();
    let got: Vec<(String, String)> = (0..expected.len())
        .map(|_| next_message(&mut sub))
        .collect();
    assert_eq!(got, expected);
}

/// Writes through nodes 1 and 2 notify a subscriber on node 3; an expiry is
/// announced once, by the key's first owner.
#[test]
fn events_reach_subscribers_on_every_node() {
    if common::is_real_redis() {
        return;
    }
    let c = Cluster::start(3);
    for node in 0..3 {
        c.ok(node, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    }
    let mut sub = c.conn(2);
    sub.set_read_timeout(Duration::from_secs(20));
    sub.cmd_str(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    sub.cmd_str(&["SUBSCRIBE", "done"]);
    c.ok(0, &["SET", "x", "1"]);
    c.q(1, &["HSET", "h", "f", "v"]);
    c.ok(0, &["SET", "e", "v", "PX", "100"]);
    let mut seen = Vec::new();
    while !seen.contains(&("__keyevent@0__:expired".to_string(), "e".to_string())) {
        seen.push(next_message(&mut sub));
    }
    for wanted in [
        ("__keyevent@0__:set", "x"),
        ("__keyevent@0__:hset", "h"),
        ("__keyevent@0__:set", "e"),
        ("__keyevent@0__:expire", "e"),
    ] {
        assert!(
            seen.contains(&(wanted.0.to_string(), wanted.1.to_string())),
            "{wanted:?} missing from {seen:?}"
        );
    }
    // Every replica's sweeper has run since; none other announced it.
    std::thread::sleep(Duration::from_secs(3));
    c.q(0, &["PUBLISH", "done", "marker"]);
    loop {
        let (channel, message) = next_message(&mut sub);
        if channel == "done" {
            break;
        }
        assert_ne!(
            channel, "__keyevent@0__:expired",
            "a second expired event for {message}"
        );
    }
}
