//! SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH /
//! SPUBLISH and PUBSUB.
//!
//! A message published through any node reaches the subscribers of every
//! node: the node that takes the PUBLISH delivers to its own subscribers,
//! then hands the message to each other member that is up and waits for
//! them all before answering, so one publisher's messages arrive in the
//! order it published them. PUBLISH answers how many subscribers received
//! the message across the cluster. Shard channels (SSUBSCRIBE, SPUBLISH)
//! are a namespace of their own, delivered the same way. PUBSUB CHANNELS /
//! NUMSUB / NUMPAT describe this node's subscribers, as in Redis Cluster.

use super::{CmdResult, is, wrong_arity};
use crate::kv::Kv;
use crate::resp::forward;
use crate::resp::pubsub::Kind;
use crate::resp::reply::Reply;
use crate::resp::session::{ServerState, Session};
use bytes::Bytes;

/// Commands a RESP2 connection may send while subscribed.
pub fn allowed_while_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "psubscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "punsubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// Runs a Pub/Sub command.
pub async fn run<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    name: &str,
    args: &[Bytes],
) -> CmdResult {
    match name {
        "subscribe" => Ok(subscribe(server, session, Kind::Channel, &args[1..])),
        "psubscribe" => Ok(subscribe(server, session, Kind::Pattern, &args[1..])),
        "ssubscribe" => Ok(subscribe(server, session, Kind::Shard, &args[1..])),
        "unsubscribe" => Ok(unsubscribe(server, session, Kind::Channel, &args[1..])),
        "punsubscribe" => Ok(unsubscribe(server, session, Kind::Pattern, &args[1..])),
        "sunsubscribe" => Ok(unsubscribe(server, session, Kind::Shard, &args[1..])),
        "publish" | "spublish" => {
            let shard = name == "spublish";
            let (channel, message) = (&args[1], &args[2]);
            let here = server.pubsub.publish(shard, channel, message) as i64;
            let elsewhere = forward::publish_to_peers(kv, shard, channel, message).await;
            Ok(Reply::Int(here + elsewhere))
        }
        "pubsub" => pubsub(server, args),
        _ => Err(super::Reply::err(format!(
            "'{name}' is not a pubsub command"
        ))),
    }
}

fn words(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Channel => ("subscribe", "unsubscribe"),
        Kind::Pattern => ("psubscribe", "punsubscribe"),
        Kind::Shard => ("ssubscribe", "sunsubscribe"),
    }
}

/// One push reply per name, each with the subscription count after it.
fn subscribe(server: &ServerState, session: &mut Session, kind: Kind, names: &[Bytes]) -> Reply {
    let id = session.id;
    let sub = session.subscriber.get_or_insert_with(Default::default);
    let mut replies = Vec::with_capacity(names.len());
    for name in names {
        if sub.of(kind).insert(name.clone()) {
            server.pubsub.subscribe(kind, name.clone(), id, sub.inbox());
        }
        replies.push(Reply::Push(vec![
            Reply::bulk(words(kind).0),
            Reply::Bulk(name.clone()),
            Reply::Int(sub.count() as i64),
        ]));
    }
    Reply::Several(replies)
}

/// Without names: every subscription of that kind.
fn unsubscribe(server: &ServerState, session: &mut Session, kind: Kind, names: &[Bytes]) -> Reply {
    let word = words(kind).1;
    let id = session.id;
    let Some(sub) = session.subscriber.as_mut() else {
        return Reply::Push(vec![Reply::bulk(word), Reply::Null, Reply::Int(0)]);
    };
    let names: Vec<Bytes> = if names.is_empty() {
        sub.of(kind).iter().cloned().collect()
    } else {
        names.to_vec()
    };
    let mut replies = Vec::with_capacity(names.len().max(1));
    for name in &names {
        sub.of(kind).remove(name);
        server.pubsub.unsubscribe(kind, name, id);
        replies.push(Reply::Push(vec![
            Reply::bulk(word),
            Reply::Bulk(name.clone()),
            Reply::Int(sub.count() as i64),
        ]));
    }
    if replies.is_empty() {
        replies.push(Reply::Push(vec![
            Reply::bulk(word),
            Reply::Null,
            Reply::Int(sub.count() as i64),
        ]));
    }
    // With no subscription left the connection is an ordinary one again.
    if sub.count() == 0 {
        session.subscriber = None;
    }
    Reply::Several(replies)
}

fn pubsub(server: &ServerState, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    let channels = |shard: bool| {
        if args.len() > 3 {
            return Err(wrong_arity("pubsub|channels"));
        }
        let pattern = args.get(2).map(|p| &p[..]);
        Ok(Reply::Array(
            server
                .pubsub
                .active(shard, pattern)
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        ))
    };
    let numsub = |shard: bool| {
        Reply::Array(
            args[2..]
                .iter()
                .flat_map(|ch| {
                    [
                        Reply::Bulk(ch.clone()),
                        Reply::Int(server.pubsub.subscribers(shard, ch) as i64),
                    ]
                })
                .collect(),
        )
    };
    if is(sub, "channels") {
        channels(false)
    } else if is(sub, "shardchannels") {
        channels(true)
    } else if is(sub, "numsub") {
        Ok(numsub(false))
    } else if is(sub, "shardnumsub") {
        Ok(numsub(true))
    } else if is(sub, "numpat") {
        Ok(Reply::Int(server.pubsub.pattern_count() as i64))
    } else if is(sub, "help") {
        Ok(Reply::Array(
            [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::Simple((*l).into()))
            .collect(),
        ))
    } else {
        Err(Reply::err(format!(
            "unknown subcommand '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(sub)
        )))
    }
}
