//! Running memcached commands against the store, with memcached's replies.
//!
//! Every key is the same key Redis commands see in database 0: a `set`
//! here is a string for GET there (its flags kept beside the bytes), and
//! `incr` works on the same replicated counter as INCR, so the two sum.
//! Conditional storage commands (add, replace, append, prepend, cas) are
//! handed to the key's serialising node, as the RESP front end does for
//! SET NX, so two clients racing through different nodes get one winner.

use super::command::{Command, StoreOp};
use super::exptime::{Expiry, resolve_exptime};
use super::forward;
use super::state::{MemcacheState, Stats};
use crate::core::crdt::{Amount, Counter, TypedValue};
use crate::core::{db_key, stored_as_is};
use crate::kv::{Change, Kv, KvError, LiveValue, ReadOptions};
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;

/// Whether the connection goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Close the connection (quit).
    Close,
}

/// One connection's state.
#[derive(Debug)]
pub struct Session {
    /// False until a password-protected front end saw the right one.
    pub authenticated: bool,
    /// Set on the node running a command another node forwarded: it runs
    /// here, whatever this node thinks the serialising node is.
    pub forwarded: bool,
}

/// The key as stored: database 0's naming, shared with Redis clients.
pub fn stored_key(key: &Bytes) -> Bytes {
    if stored_as_is(0, key) {
        key.clone()
    } else {
        Bytes::from(db_key(0, key))
    }
}

pub(super) fn line(out: &mut BytesMut, text: &str) {
    out.put_slice(text.as_bytes());
    out.put_slice(b"\r\n");
}

/// memcached's reply line for a store failure.
pub fn server_error(e: &KvError) -> String {
    match e {
        KvError::Unavailable { answered, required } => {
            format!("SERVER_ERROR unavailable {answered} of {required} required replicas answered")
        }
        other => {
            let text = other.to_string();
            let text = text.strip_prefix("ERR ").unwrap_or(&text);
            format!("SERVER_ERROR {}", text.replace(['\r', '\n'], " "))
        }
    }
}

/// Runs one command, appending its reply to `out`.
pub async fn run<K: Kv + 'static>(
    kv: &Arc<K>,
    state: &MemcacheState,
    session: &mut Session,
    cmd: Command,
    out: &mut BytesMut,
) -> Flow {
    if !session.authenticated {
        return authenticate(state, session, cmd, out);
    }
    let stats = &state.stats;
    match cmd {
        Command::Get {
            keys,
            with_cas,
            touch,
        } => {
            get(&**kv, stats, keys, with_cas, touch, out).await;
        }
        Command::Store {
            op,
            key,
            flags,
            exptime,
            data,
            cas,
            noreply,
        } => {
            Stats::bump(&stats.cmd_set);
            if op.is_conditional()
                && !session.forwarded
                && let Some(reply) = forward::to_serialising_node(
                    &**kv,
                    &stored_key(&key),
                    &Command::Store {
                        op,
                        key: key.clone(),
                        flags,
                        exptime,
                        data: data.clone(),
                        cas,
                        noreply,
                    },
                )
                .await
            {
                if !noreply {
                    out.put_slice(&reply);
                }
                return Flow::Continue;
            }
            let reply = store(&**kv, state, op, key, flags, exptime, data, cas).await;
            if !noreply || reply.starts_with("SERVER_ERROR") {
                line(out, &reply);
            }
        }
        Command::Delete { key, noreply } => {
            let key = stored_key(&key);
            let result = kv
                .modify(key, |cur, _| match cur {
                    Some(_) => (Change::Delete, true),
                    None => (Change::Keep, false),
                })
                .await;
            let reply = match result {
                Ok(true) => {
                    Stats::bump(&stats.delete_hits);
                    "DELETED".to_string()
                }
                Ok(false) => {
                    Stats::bump(&stats.delete_misses);
                    "NOT_FOUND".to_string()
                }
                Err(e) => server_error(&e),
            };
            if !noreply {
                line(out, &reply);
            }
        }
        Command::Arith {
            key,
            delta,
            incr,
            noreply,
        } => {
            let reply = arith(&**kv, stats, stored_key(&key), delta, incr).await;
            if !noreply {
                line(out, &reply);
            }
        }
        Command::Touch {
            key,
            exptime,
            noreply,
        } => {
            Stats::bump(&stats.cmd_touch);
            let reply = match touch(&**kv, stored_key(&key), exptime).await {
                Ok(Some(_)) => {
                    Stats::bump(&stats.touch_hits);
                    "TOUCHED".to_string()
                }
                Ok(None) => {
                    Stats::bump(&stats.touch_misses);
                    "NOT_FOUND".to_string()
                }
                Err(e) => server_error(&e),
            };
            if !noreply {
                line(out, &reply);
            }
        }
        Command::FlushAll { delay, noreply } => {
            Stats::bump(&stats.cmd_flush);
            let reply = flush_all(kv, delay).await;
            if !noreply {
                line(out, &reply);
            }
        }
        Command::Version => line(out, &format!("VERSION {}", super::VERSION)),
        Command::Verbosity { noreply } => {
            if !noreply {
                line(out, "OK");
            }
        }
        Command::Stats { group } => super::stats::render(&**kv, state, group.as_deref(), out),
        Command::Quit => return Flow::Close,
        Command::Meta(meta) => super::meta_ops::run(kv, state, session, meta, out).await,
    }
    Flow::Continue
}

/// memcached's `-Y` mode: until authenticated, the only command is a `set`
/// whose data is `username password`.
fn authenticate(
    state: &MemcacheState,
    session: &mut Session,
    cmd: Command,
    out: &mut BytesMut,
) -> Flow {
    let Command::Store {
        op: StoreOp::Set,
        data,
        ..
    } = cmd
    else {
        if cmd == Command::Quit {
            return Flow::Close;
        }
        line(out, "CLIENT_ERROR unauthenticated");
        return Flow::Continue;
    };
    Stats::bump(&state.stats.auth_cmds);
    let given = data
        .split(|&b| b == b' ')
        .nth(1)
        .map(|p| p.strip_suffix(b"\n").unwrap_or(p))
        .map(|p| p.strip_suffix(b"\r").unwrap_or(p));
    let ok = match (&state.password, given) {
        (Some(want), Some(given)) => want.as_bytes() == given,
        (None, _) => true,
        _ => false,
    };
    if ok {
        session.authenticated = true;
        line(out, "STORED");
    } else {
        Stats::bump(&state.stats.auth_errors);
        line(out, "CLIENT_ERROR authentication failure");
    }
    Flow::Continue
}

async fn get<K: Kv>(
    kv: &K,
    stats: &Stats,
    keys: Vec<Bytes>,
    with_cas: bool,
    touch_to: Option<i64>,
    out: &mut BytesMut,
) {
    let reads = keys.iter().map(|key| async move {
        let stored = stored_key(key);
        match touch_to {
            Some(exptime) => match touch(kv, stored.clone(), exptime).await {
                // The touch was a write: the cas to hand out is the one
                // after it, or a following cas would always fail.
                Ok(Some(_)) if with_cas => read(kv, stored).await,
                other => other,
            },
            None => read(kv, stored).await,
        }
    });
    let values = futures::future::join_all(reads).await;
    Stats::bump_by(&stats.cmd_get, keys.len());
    if touch_to.is_some() {
        Stats::bump_by(&stats.cmd_touch, keys.len());
    }
    for (key, value) in keys.iter().zip(values) {
        match value {
            Ok(Some(v)) => {
                Stats::bump(&stats.get_hits);
                out.put_slice(b"VALUE ");
                out.put_slice(key);
                let header = if with_cas {
                    format!(" {} {} {}\r\n", v.flags, v.data.len(), v.cas)
                } else {
                    format!(" {} {}\r\n", v.flags, v.data.len())
                };
                out.put_slice(header.as_bytes());
                out.put_slice(&v.data);
                out.put_slice(b"\r\n");
            }
            Ok(None) => Stats::bump(&stats.get_misses),
            Err(e) => {
                // memcached has no per-key error in a multi-get: the whole
                // reply becomes the error, never a silent miss.
                out.clear();
                line(out, &server_error(&e));
                return;
            }
        }
    }
    out.put_slice(b"END\r\n");
}

/// The live string value of `key` (None when absent, expired or a
/// collection, which memcached cannot show).
pub(super) async fn read<K: Kv>(kv: &K, key: Bytes) -> Result<Option<LiveValue>, KvError> {
    let obj = kv.get(key, ReadOptions::default()).await?;
    Ok(LiveValue::versioned(&obj, kv.now_ms()).filter(LiveValue::is_string))
}

pub(super) fn string_change(data: Bytes, expiry: Expiry, flags: u32) -> Change {
    match expiry {
        Expiry::Expired => Change::Delete,
        Expiry::Never => Change::Write {
            data,
            expires_at_ms: None,
            flags,
        },
        Expiry::At(at) => Change::Write {
            data,
            expires_at_ms: Some(at),
            flags,
        },
    }
}

/// append (or prepend) of `data` to the string `v`: the write, or `None`
/// when the result would pass the item size limit. The flags and expiry
/// sent with the command are ignored, as memcached ignores them.
pub(super) fn joined(v: &LiveValue, data: &Bytes, append: bool, max_item: usize) -> Option<Change> {
    if v.data.len() + data.len() > max_item {
        return None;
    }
    let mut out = BytesMut::with_capacity(v.data.len() + data.len());
    let (first, second) = if append {
        (&v.data, data)
    } else {
        (data, &v.data)
    };
    out.put_slice(first);
    out.put_slice(second);
    Some(Change::Write {
        data: out.freeze(),
        expires_at_ms: v.expires_at_ms,
        flags: v.flags,
    })
}

#[allow(clippy::too_many_arguments)]
async fn store<K: Kv>(
    kv: &K,
    state: &MemcacheState,
    op: StoreOp,
    key: Bytes,
    flags: u32,
    exptime: i64,
    data: Bytes,
    cas: u64,
) -> String {
    let key = stored_key(&key);
    let expiry = resolve_exptime(exptime, kv.now_ms());
    let stats = &state.stats;
    if op == StoreOp::Set {
        return match kv.overwrite(key, string_change(data, expiry, flags)).await {
            Ok(()) => "STORED".into(),
            Err(e) => server_error(&e),
        };
    }
    let max_item = state.max_item;
    let result = kv
        .modify(key, move |cur, _| {
            let cur = cur.filter(LiveValue::is_string);
            match (op, cur) {
                (StoreOp::Add, Some(_)) | (StoreOp::Replace, None) => {
                    (Change::Keep, Outcome::NotStored)
                }
                (StoreOp::Add | StoreOp::Replace, _) => {
                    (string_change(data, expiry, flags), Outcome::Stored)
                }
                (StoreOp::Append | StoreOp::Prepend, None) => (Change::Keep, Outcome::NotStored),
                (StoreOp::Append | StoreOp::Prepend, Some(v)) => {
                    match joined(&v, &data, op == StoreOp::Append, max_item) {
                        Some(change) => (change, Outcome::Stored),
                        None => (Change::Keep, Outcome::TooLarge),
                    }
                }
                (StoreOp::Cas, None) => (Change::Keep, Outcome::NotFound),
                (StoreOp::Cas, Some(v)) if v.cas != cas => (Change::Keep, Outcome::Exists),
                (StoreOp::Cas, Some(_)) => (string_change(data, expiry, flags), Outcome::Stored),
                (StoreOp::Set, _) => (string_change(data, expiry, flags), Outcome::Stored),
            }
        })
        .await;
    match result {
        Ok(outcome) => {
            if op == StoreOp::Cas {
                Stats::bump(match outcome {
                    Outcome::Stored => &stats.cas_hits,
                    Outcome::Exists => &stats.cas_badval,
                    _ => &stats.cas_misses,
                });
            }
            outcome.reply().into()
        }
        Err(e) => server_error(&e),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Stored,
    NotStored,
    Exists,
    NotFound,
    TooLarge,
}

impl Outcome {
    fn reply(self) -> &'static str {
        match self {
            Outcome::Stored => "STORED",
            Outcome::NotStored => "NOT_STORED",
            Outcome::Exists => "EXISTS",
            Outcome::NotFound => "NOT_FOUND",
            Outcome::TooLarge => "SERVER_ERROR out of memory storing object",
        }
    }
}

/// incr / decr. A numeric value becomes (or stays) the replicated counter
/// Redis's INCR uses, so increments through different nodes and through
/// both protocols add up. memcached's values are unsigned 64-bit: decr
/// stops at 0, and a result beyond the counter's signed range is stored
/// as a plain number (wrapping at 2^64 as memcached does).
/// One incr/decr step on what the key holds: the change to write and the
/// new value, or memcached's refusal.
pub(super) fn step_counter(
    v: &LiveValue,
    delta: u64,
    incr: bool,
    expires_at_ms: Option<u64>,
) -> Result<(Change, u64), &'static str> {
    let (counter, current) = match &v.typed {
        Some(TypedValue::Counter(c)) if !c.is_float() => match u64::try_from(c.value().int) {
            Ok(n) => (Some(c.clone()), n),
            Err(_) => return Err(NON_NUMERIC),
        },
        Some(_) => return Err(NON_NUMERIC),
        None => match super::command::number::<u64>(trim_spaces(&v.data)) {
            Some(n) => (None, n),
            None => return Err(NON_NUMERIC),
        },
    };
    let next = if incr {
        current.wrapping_add(delta)
    } else {
        current.saturating_sub(delta)
    };
    let change = match i64::try_from(next).ok().zip(i64::try_from(current).ok()) {
        Some((next_i, current_i)) => {
            let mut counter = counter.unwrap_or_else(|| Counter::with_base(Amount::int(current_i)));
            counter.add(Amount::int(next_i - current_i));
            Change::WriteTyped {
                value: TypedValue::Counter(counter),
                expires_at_ms,
            }
        }
        None => Change::Write {
            data: Bytes::from(next.to_string()),
            expires_at_ms,
            flags: v.flags,
        },
    };
    Ok((change, next))
}

/// incr / decr. A numeric value becomes (or stays) the replicated counter
/// Redis's INCR uses, so increments through different nodes and through
/// both protocols add up. memcached's values are unsigned 64-bit: decr
/// stops at 0, and a result beyond the counter's signed range is stored
/// as a plain number (wrapping at 2^64 as memcached does).
async fn arith<K: Kv>(kv: &K, stats: &Stats, key: Bytes, delta: u64, incr: bool) -> String {
    let result = kv
        .modify(key, move |cur, _| {
            let Some(v) = cur else {
                return (Change::Keep, Err("NOT_FOUND"));
            };
            match step_counter(&v, delta, incr, v.expires_at_ms) {
                Ok((change, next)) => (change, Ok(next)),
                Err(e) => (Change::Keep, Err(e)),
            }
        })
        .await;
    let (hits, misses) = if incr {
        (&stats.incr_hits, &stats.incr_misses)
    } else {
        (&stats.decr_hits, &stats.decr_misses)
    };
    match result {
        Ok(Ok(n)) => {
            Stats::bump(hits);
            n.to_string()
        }
        Ok(Err(reply)) => {
            if reply == "NOT_FOUND" {
                Stats::bump(misses);
            }
            reply.to_string()
        }
        Err(e) => server_error(&e),
    }
}

pub(super) const NON_NUMERIC: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value";

/// memcached pads a number that shrank with spaces; they read as nothing.
fn trim_spaces(data: &[u8]) -> &[u8] {
    let end = data.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &data[..end]
}

/// Gives `key` a new exptime; the value it held, if it was present.
pub(super) async fn touch<K: Kv>(
    kv: &K,
    key: Bytes,
    exptime: i64,
) -> Result<Option<LiveValue>, KvError> {
    let expiry = resolve_exptime(exptime, kv.now_ms());
    kv.modify(key, move |cur, _| match cur.filter(LiveValue::is_string) {
        Some(v) => {
            let change = match expiry {
                Expiry::Expired => Change::Delete,
                Expiry::Never => v.clone().with_expiry(None),
                Expiry::At(at) => v.clone().with_expiry(Some(at)),
            };
            (change, Some(v))
        }
        None => (Change::Keep, None),
    })
    .await
}

async fn flush_all<K: Kv + 'static>(kv: &Arc<K>, delay: i64) -> String {
    if let Ok(delay @ 1..) = u64::try_from(delay) {
        // memcached invalidates what exists at that time; here the flush
        // runs then. The reply cannot wait for it, so a failure is logged.
        let kv = kv.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(delay)).await;
            if let Err(e) = kv.flush_all().await {
                tracing::warn!("delayed memcached flush_all failed: {e}");
            }
        });
        return "OK".into();
    }
    match kv.flush_all().await {
        Ok(()) => "OK".into(),
        Err(e) => server_error(&e),
    }
}
