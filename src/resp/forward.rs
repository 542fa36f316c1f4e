//! Conditional commands run at one node per key.
//!
//! SET NX, GETSET, SMOVE, ZADD XX, a WATCHed EXEC ... read a key and decide
//! what to write from what they read. Run by whichever node a client talks
//! to, two clients racing through different nodes could both see the key
//! absent and both "win". So the node a client talks to hands such a
//! command to the first healthy node of the key's preference list, which
//! runs it through its own dispatcher: its per-key lock and quorum read
//! then serialise every racer, and only one wins. When that node cannot be
//! reached (a partition, or failure detectors that disagree) the command
//! runs where it arrived, so the key stays writable; only then can two
//! racers both win.

use super::cmd::transactions::{Queued, Watched};
use super::cmd::{CommandSpec, dispatch, is, lookup_indexed};
use super::database::InDb;
use super::reply::Reply;
use super::session::{ServerState, Session};
use crate::core::NodeId;
use crate::kv::{CommandRunner, Kv, KvError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

/// What one node asks another to run.
#[derive(Debug, Serialize, Deserialize)]
enum Forwarded {
    /// One command, in database `db`.
    Command { db: u8, args: Vec<Bytes> },
    /// EXEC of a transaction begun in database `db`, whose watched keys had
    /// the versions in `watched`.
    Exec {
        db: u8,
        watched: Vec<Watched>,
        commands: Vec<Vec<Bytes>>,
    },
    /// Keys (with their databases) pushed to through another node, for
    /// this node's blocked clients.
    KeysReady { keys: Vec<(u8, Bytes)> },
    /// A message published through another node, for this node's
    /// subscribers.
    Publish {
        shard: bool,
        channel: Bytes,
        message: Bytes,
    },
    /// Keyspace notifications (channel, message) of another node, in the
    /// order it emitted them, for this node's subscribers.
    Notify { messages: Vec<(Bytes, Bytes)> },
}

/// The answer, with the database the connection ends up in (a SELECT
/// inside a transaction moves it).
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    reply: Reply,
    db: u8,
}

/// The key whose serialising node must run this command, if it is a
/// conditional one.
fn conditional_key<'a>(spec: &CommandSpec, args: &'a [Bytes]) -> Option<&'a Bytes> {
    let has_option = |from: usize, options: &[&str]| {
        args.get(from..)
            .is_some_and(|rest| rest.iter().any(|a| options.iter().any(|o| is(a, o))))
    };
    match spec.name {
        "set" if has_option(3, &["NX", "XX", "GET"]) => args.get(1),
        "zadd" if has_option(2, &["NX", "XX", "GT", "LT"]) => args.get(1),
        "setnx" | "getset" | "getdel" | "msetnx" | "hsetnx" | "smove" | "spop" | "zpopmin"
        | "zpopmax" | "lpop" | "rpop" | "lmove" | "rpoplpush" | "blpop" | "brpop" | "blmove"
        | "brpoplpush" => args.get(1),
        "lmpop" => args.get(2),
        "blmpop" => args.get(3),
        // The name taken is what two racers would both claim.
        "renamenx" => args.get(2),
        _ => None,
    }
}

/// The node that must run this request instead of this one, if any.
pub fn serialising_node<K: Kv>(
    kv: &K,
    session: &Session,
    spec: &CommandSpec,
    args: &[Bytes],
) -> Option<NodeId> {
    if session.forwarded {
        // Already at the node that serialises it (in its own view).
        return None;
    }
    if spec.name == "exec" {
        let queued = session.multi.as_ref()?;
        let first = session.watched.first()?;
        if queued.is_aborted() {
            return None;
        }
        return InDb::new(kv, first.db()).serialising_node(first.key());
    }
    let key = conditional_key(spec, args)?;
    InDb::new(kv, session.db).serialising_node(key)
}

/// Runs the request at `node`. `None` when it surely did not run there
/// (the caller then runs it here).
pub async fn run_at<K: Kv>(
    kv: &K,
    session: &mut Session,
    node: NodeId,
    spec: &CommandSpec,
    args: Vec<Bytes>,
) -> Option<Reply> {
    let request = if spec.name == "exec" {
        let queued = session.multi.as_ref()?;
        Forwarded::Exec {
            db: session.db,
            watched: session.watched.clone(),
            commands: queued.commands().cloned().collect(),
        }
    } else {
        Forwarded::Command {
            db: session.db,
            args,
        }
    };
    let payload = match postcard::to_stdvec(&request) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => return Some(Reply::err(format!("cannot forward the command: {e}"))),
    };
    let answer = match kv.forward_command(node, payload).await {
        Ok(answer) => answer,
        Err(KvError::NotDelivered(_)) => return None,
        Err(e) => return Some(Reply::Error(e.to_string())),
    };
    if spec.name == "exec" {
        session.multi = None;
        session.watched.clear();
    }
    Some(match postcard::from_bytes::<Answer>(&answer) {
        Ok(Answer { reply, db }) => {
            session.db = db;
            reply
        }
        Err(e) => Reply::err(format!("unreadable answer from the serialising node: {e}")),
    })
}

/// Sends `request` to every other member that is up and waits for all
/// their answers (so the caller's next request cannot overtake this one);
/// an unreachable member's answer is its error.
async fn to_live_peers<K: Kv>(kv: &K, request: &Forwarded) -> Vec<Result<Bytes, KvError>> {
    let peers = kv.live_peers();
    if peers.is_empty() {
        return Vec::new();
    }
    let Ok(payload) = postcard::to_stdvec(request).map(Bytes::from) else {
        return Vec::new();
    };
    futures::future::join_all(
        peers
            .into_iter()
            .map(|peer| kv.forward_command(peer, payload.clone())),
    )
    .await
}

/// Hands a published message to every other member that is up; returns
/// how many subscribers there received it.
pub async fn publish_to_peers<K: Kv>(kv: &K, shard: bool, channel: &Bytes, message: &Bytes) -> i64 {
    let request = Forwarded::Publish {
        shard,
        channel: channel.clone(),
        message: message.clone(),
    };
    to_live_peers(kv, &request)
        .await
        .into_iter()
        .filter_map(|answer| {
            let answer = answer.ok()?;
            match postcard::from_bytes::<Answer>(&answer).ok()?.reply {
                Reply::Int(n) => Some(n),
                _ => None,
            }
        })
        .sum()
}

/// Tells every other member that is up which keys were pushed to here;
/// a member that misses it finds the element at its blocked clients'
/// next poll.
pub async fn announce_ready<K: Kv>(kv: &K, keys: Vec<(u8, Bytes)>) {
    to_live_peers(kv, &Forwarded::KeysReady { keys }).await;
}

/// Hands keyspace notifications to every other member that is up (one
/// message per batch), batches in order.
pub async fn notify_peers<K: Kv>(kv: &K, messages: Vec<(Bytes, Bytes)>) {
    to_live_peers(kv, &Forwarded::Notify { messages }).await;
}

/// Runs the commands other nodes forward to this one.
pub struct ForwardedRunner<K> {
    kv: Weak<K>,
    server: Arc<ServerState>,
}

impl<K> ForwardedRunner<K> {
    /// A runner dispatching to `kv` (held weakly: the node holds the runner).
    pub fn new(kv: Weak<K>, server: Arc<ServerState>) -> Self {
        Self { kv, server }
    }
}

impl<K: Kv + 'static> CommandRunner for ForwardedRunner<K> {
    fn run(&self, payload: Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>> {
        let kv = self.kv.upgrade();
        let server = self.server.clone();
        Box::pin(async move {
            let answer = match (kv, postcard::from_bytes::<Forwarded>(&payload)) {
                (None, _) => Answer {
                    reply: Reply::err("node is shutting down"),
                    db: 0,
                },
                (_, Err(e)) => Answer {
                    reply: Reply::err(format!("unreadable forwarded command: {e}")),
                    db: 0,
                },
                (Some(kv), Ok(request)) => run_here(&*kv, &server, request).await,
            };
            Bytes::from(postcard::to_stdvec(&answer).unwrap_or_default())
        })
    }
}

async fn run_here<K: Kv>(kv: &K, server: &ServerState, request: Forwarded) -> Answer {
    let mut session = Session::forwarded();
    let args = match request {
        Forwarded::Publish {
            shard,
            channel,
            message,
        } => {
            let received = server.pubsub.publish(shard, &channel, &message);
            return Answer {
                reply: Reply::Int(received as i64),
                db: 0,
            };
        }
        Forwarded::Notify { messages } => {
            for (channel, message) in &messages {
                server.pubsub.publish(false, channel, message);
            }
            return Answer {
                reply: Reply::ok(),
                db: 0,
            };
        }
        Forwarded::KeysReady { keys } => {
            for (db, key) in &keys {
                server.key_waiters.wake(*db, key);
            }
            return Answer {
                reply: Reply::ok(),
                db: 0,
            };
        }
        Forwarded::Command { db, args } => {
            session.db = db;
            args
        }
        Forwarded::Exec {
            db,
            watched,
            commands,
        } => {
            session.db = db;
            session.watched = watched;
            let mut queued = Queued::default();
            for args in commands {
                match args.first().and_then(|name| lookup_indexed(name)) {
                    Some((idx, _)) => queued.push(idx, args),
                    None => queued.abort(),
                }
            }
            session.multi = Some(queued);
            vec![Bytes::from_static(b"EXEC")]
        }
    };
    let reply = dispatch(kv, server, &mut session, args).await;
    Answer {
        reply,
        db: session.db,
    }
}
