//! Pub/Sub: SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE and their UNSUBSCRIBEs,
//! PUBLISH, PUBSUB, RESP2's subscribed mode and RESP3 push frames on one
//! real node (`DYNKV_TEST_AGAINST=redis` runs these against redis-server
//! too), and messages published through two nodes of a 3-node cluster
//! reaching a subscriber on the third, every one, in each publisher's
//! order (`DYNKV_PUBSUB_MESSAGES`, default 1,000 per publisher).

mod common;

use common::cluster::Cluster;
use common::{RawConn, Reply, Server};
use std::time::Duration;

fn push(words: &[&str], count: Option<i64>) -> Reply {
    let mut items: Vec<Reply> = words
        .iter()
        .map(|w| Reply::Bulk(w.as_bytes().to_vec()))
        .collect();
    if let Some(n) = count {
        items.push(Reply::Int(n));
    }
    Reply::Array(items)
}

fn read(conn: &mut RawConn) -> Reply {
    conn.read().expect("a pushed message")
}

#[test]
fn subscribe_publish_and_subscribed_mode_as_in_redis() {
    let s = Server::start();
    let mut sub = s.raw();
    let mut publisher = s.raw();
    // One reply per channel, each with the running count.
    assert_eq!(
        sub.cmd_str(&["SUBSCRIBE", "news", "sport"]),
        push(&["subscribe", "news"], Some(1))
    );
    assert_eq!(read(&mut sub), push(&["subscribe", "sport"], Some(2)));
    assert_eq!(
        publisher.cmd_str(&["PUBLISH", "news", "hello"]),
        Reply::Int(1)
    );
    assert_eq!(read(&mut sub), push(&["message", "news", "hello"], None));
    assert_eq!(
        publisher.cmd_str(&["PUBLISH", "nobody", "x"]),
        Reply::Int(0)
    );
    // Patterns.
    assert_eq!(
        sub.cmd_str(&["PSUBSCRIBE", "sp*"]),
        push(&["psubscribe", "sp*"], Some(3))
    );
    assert_eq!(
        publisher.cmd_str(&["PUBLISH", "sport", "goal"]),
        Reply::Int(2)
    );
    let mut got = vec![read(&mut sub), read(&mut sub)];
    got.sort_by_key(|r| format!("{r:?}"));
    assert!(
        got.contains(&push(&["message", "sport", "goal"], None)),
        "{got:?}"
    );
    assert!(
        got.contains(&push(&["pmessage", "sp*", "sport", "goal"], None)),
        "{got:?}"
    );
    // Introspection.
    let Reply::Array(channels) = publisher.cmd_str(&["PUBSUB", "CHANNELS"]) else {
        panic!("PUBSUB CHANNELS");
    };
    assert_eq!(channels.len(), 2);
    assert_eq!(
        publisher.cmd_str(&["PUBSUB", "NUMSUB", "news", "none"]),
        Reply::Array(vec![
            Reply::Bulk(b"news".to_vec()),
            Reply::Int(1),
            Reply::Bulk(b"none".to_vec()),
            Reply::Int(0),
        ])
    );
    assert_eq!(publisher.cmd_str(&["PUBSUB", "NUMPAT"]), Reply::Int(1));
    // RESP2 subscribed mode: only the subscription commands, PING, QUIT, RESET.
    let refused = sub.cmd_str(&["GET", "k"]);
    assert!(
        refused.as_str().contains("Can't execute 'get'"),
        "{refused:?}"
    );
    assert_eq!(sub.cmd_str(&["PING"]), push(&["pong", ""], None));
    // UNSUBSCRIBE without names drops every channel (not the pattern).
    let first = sub.cmd_str(&["UNSUBSCRIBE"]);
    let second = read(&mut sub);
    let mut both = vec![first, second];
    both.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        both,
        [
            push(&["unsubscribe", "news"], Some(2)),
            push(&["unsubscribe", "sport"], Some(1))
        ]
    );
    assert_eq!(
        sub.cmd_str(&["PUNSUBSCRIBE", "sp*"]),
        push(&["punsubscribe", "sp*"], Some(0))
    );
    // An ordinary connection again.
    assert_eq!(sub.cmd_str(&["GET", "k"]), Reply::Nil);
    assert_eq!(
        publisher.cmd_str(&["PUBLISH", "news", "late"]),
        Reply::Int(0)
    );
    // Shard channels.
    assert_eq!(
        sub.cmd_str(&["SSUBSCRIBE", "orders"]),
        push(&["ssubscribe", "orders"], Some(1))
    );
    assert_eq!(
        publisher.cmd_str(&["SPUBLISH", "orders", "o1"]),
        Reply::Int(1)
    );
    assert_eq!(read(&mut sub), push(&["smessage", "orders", "o1"], None));
    assert_eq!(
        publisher.cmd_str(&["PUBLISH", "orders", "not-shard"]),
        Reply::Int(0)
    );
    assert_eq!(
        sub.cmd_str(&["SUNSUBSCRIBE", "orders"]),
        push(&["sunsubscribe", "orders"], Some(0))
    );
    // UNSUBSCRIBE with nothing subscribed.
    assert_eq!(
        sub.cmd_str(&["UNSUBSCRIBE"]),
        Reply::Array(vec![
            Reply::Bulk(b"unsubscribe".to_vec()),
            Reply::Nil,
            Reply::Int(0)
        ])
    );
}

#[test]
fn resp3_subscribers_get_push_frames_and_may_run_any_command() {
    let s = Server::start();
    let mut sub = s.raw();
    assert!(matches!(sub.cmd_str(&["HELLO", "3"]), Reply::Map(_)));
    let reply = sub.cmd_str(&["SUBSCRIBE", "ch"]);
    assert_eq!(
        reply,
        Reply::Push(vec![
            Reply::Bulk(b"subscribe".to_vec()),
            Reply::Bulk(b"ch".to_vec()),
            Reply::Int(1)
        ])
    );
    // RESP3 allows other commands in between.
    assert_eq!(sub.cmd_str(&["SET", "k", "v"]).as_str(), "OK");
    assert_eq!(s.raw().cmd_str(&["PUBLISH", "ch", "m"]), Reply::Int(1));
    assert_eq!(
        read(&mut sub),
        Reply::Push(vec![
            Reply::Bulk(b"message".to_vec()),
            Reply::Bulk(b"ch".to_vec()),
            Reply::Bulk(b"m".to_vec())
        ])
    );
}

#[test]
fn redis_rs_pubsub_receives_what_is_published() {
    let s = Server::start();
    let mut conn = s.client().get_connection().expect("connect");
    let mut pubsub = conn.as_pubsub();
    pubsub.subscribe("events").expect("subscribe");
    pubsub.psubscribe("ev*").expect("psubscribe");
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut publisher = s.conn();
    let n: i64 = redis::cmd("PUBLISH")
        .arg("events")
        .arg("payload")
        .query(&mut publisher)
        .expect("publish");
    assert_eq!(n, 2);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let msg = pubsub.get_message().expect("message");
        let payload: String = msg.get_payload().expect("payload");
        seen.push((
            msg.get_channel_name().to_string(),
            payload,
            msg.from_pattern(),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("events".to_string(), "payload".to_string(), false),
            ("events".to_string(), "payload".to_string(), true),
        ]
    );
}

/// A subscriber on node 3 receives every message published through nodes
/// 1 and 2, in each publisher's order.
#[test]
fn messages_published_anywhere_reach_subscribers_everywhere() {
    if common::is_real_redis() {
        return;
    }
    let per_publisher: usize = std::env::var("DYNKV_PUBSUB_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let c = Cluster::start(3);
    let mut sub = c.conn(2);
    sub.set_read_timeout(Duration::from_secs(30));
    assert_eq!(
        sub.cmd_str(&["SUBSCRIBE", "feed"]),
        push(&["subscribe", "feed"], Some(1))
    );
    let publishers: Vec<_> = (0..2)
        .map(|node| {
            let mut conn = c.conn(node);
            std::thread::spawn(move || {
                for i in 0..per_publisher {
                    let reply = conn.cmd_str(&["PUBLISH", "feed", &format!("{node}:{i}")]);
                    assert_eq!(reply, Reply::Int(1), "PUBLISH through node {node}");
                }
            })
        })
        .collect();
    let mut next = [0usize; 2];
    for _ in 0..2 * per_publisher {
        let Reply::Array(items) = read(&mut sub) else {
            panic!("not a message");
        };
        let payload = String::from_utf8(match &items[2] {
            Reply::Bulk(b) => b.clone(),
            other => panic!("payload {other:?}"),
        })
        .expect("utf8");
        let (node, i) = payload.split_once(':').expect("node:i");
        let node: usize = node.parse().expect("node");
        assert_eq!(
            i.parse::<usize>().expect("i"),
            next[node],
            "publisher {node} out of order"
        );
        next[node] += 1;
    }
    for p in publishers {
        p.join().expect("publisher");
    }
    assert_eq!(next, [per_publisher, per_publisher]);
}
