//! MULTI / EXEC / DISCARD / WATCH / UNWATCH.
//!
//! Between MULTI and EXEC a connection's commands are queued, not run; EXEC
//! runs them in order and answers with all their replies. WATCH remembers
//! a key's version (its causal context); EXEC answers nil and runs nothing
//! if any watched key has been written since. An EXEC holds the node's
//! atomic gate exclusively from that check to its last command, so no other
//! command of this node's clients runs in between. Clients of different
//! nodes are not serialised against each other (the check is optimistic,
//! as in Redis, but per node) unless the transaction was forwarded to its
//! first watched key's serialising node.

use super::{CmdResult, wrong_arity};
use crate::core::VersionVector;
use crate::kv::{Kv, LiveValue, ReadOptions};
use crate::resp::database::InDb;
use crate::resp::reply::Reply;
use crate::resp::session::{ServerState, Session};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Commands a transaction has queued.
#[derive(Debug, Default)]
pub struct Queued {
    /// Index in the command table and arguments, in order.
    commands: Vec<(usize, Vec<Bytes>)>,
    /// A command was refused while queueing (unknown, wrong arity): EXEC
    /// then runs nothing.
    aborted: bool,
}

impl Queued {
    /// Commands queued so far.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Whether none is queued.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Queues one command.
    pub fn push(&mut self, idx: usize, args: Vec<Bytes>) {
        self.commands.push((idx, args));
    }

    /// Marks the transaction as failed (EXEC will answer EXECABORT).
    pub fn abort(&mut self) {
        self.aborted = true;
    }

    /// Whether EXEC will answer EXECABORT.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// The queued commands' arguments, in order.
    pub fn commands(&self) -> impl Iterator<Item = &Vec<Bytes>> {
        self.commands.iter().map(|(_, args)| args)
    }
}

/// A key as WATCH saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Watched {
    db: u8,
    key: Bytes,
    version: Version,
}

impl Watched {
    /// Its database.
    pub fn db(&self) -> u8 {
        self.db
    }

    /// Its name.
    pub fn key(&self) -> &Bytes {
        &self.key
    }
}

/// What WATCH compares: every write gives a key a new causal context, and
/// an expiry makes a live key absent without one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Version {
    context: VersionVector,
    live: bool,
}

/// Commands a transaction runs at once instead of queueing.
pub fn runs_immediately(name: &str) -> bool {
    matches!(
        name,
        "multi" | "exec" | "discard" | "watch" | "quit" | "reset"
    )
}

async fn version_of<K: Kv>(kv: &K, db: u8, key: Bytes) -> Result<Version, Reply> {
    let obj = InDb::new(kv, db)
        .get(key, ReadOptions::default())
        .await
        .map_err(super::kv_error)?;
    Ok(Version {
        live: LiveValue::of(&obj, kv.now_ms()).is_some(),
        context: obj.context,
    })
}

/// Runs MULTI, DISCARD, WATCH or UNWATCH (EXEC is [`exec`]).
pub async fn run<K: Kv>(kv: &K, session: &mut Session, name: &str, args: &[Bytes]) -> CmdResult {
    match name {
        "multi" => {
            if session.multi.is_some() {
                return Err(Reply::err("MULTI calls can not be nested"));
            }
            session.multi = Some(Queued::default());
            Ok(Reply::ok())
        }
        "discard" => {
            if session.multi.take().is_none() {
                return Err(Reply::err("DISCARD without MULTI"));
            }
            session.watched.clear();
            Ok(Reply::ok())
        }
        "watch" => {
            if session.multi.is_some() {
                return Err(Reply::err("WATCH inside MULTI is not allowed"));
            }
            if args.len() < 2 {
                return Err(wrong_arity("watch"));
            }
            for key in &args[1..] {
                let version = version_of(kv, session.db, key.clone()).await?;
                session.watched.push(Watched {
                    db: session.db,
                    key: key.clone(),
                    version,
                });
            }
            Ok(Reply::ok())
        }
        "unwatch" => {
            session.watched.clear();
            Ok(Reply::ok())
        }
        _ => Err(Reply::err(format!("'{name}' is not a transaction command"))),
    }
}

/// Whether any watched key was written since WATCH.
async fn watched_changed<K: Kv>(kv: &K, watched: &[Watched]) -> Result<bool, Reply> {
    for w in watched {
        if version_of(kv, w.db, w.key.clone()).await? != w.version {
            return Ok(true);
        }
    }
    Ok(false)
}

/// EXEC: checks the watched keys, then runs the queued commands in order.
pub async fn exec<K: Kv>(kv: &K, server: &ServerState, session: &mut Session) -> CmdResult {
    let Some(queued) = session.multi.take() else {
        return Err(Reply::err("EXEC without MULTI"));
    };
    let watched = std::mem::take(&mut session.watched);
    if queued.aborted {
        return Err(Reply::Error(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    let _serialised = server.atomic_gate.write().await;
    if watched_changed(kv, &watched).await? {
        return Ok(Reply::NullArray);
    }
    let mut replies = Vec::with_capacity(queued.commands.len());
    let held = std::mem::replace(&mut session.holds_gate, true);
    for (idx, args) in queued.commands {
        replies.push(super::run_queued(kv, server, session, idx, args).await);
    }
    session.holds_gate = held;
    Ok(Reply::Array(replies))
}
