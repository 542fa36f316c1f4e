//! Keyspace notifications (`notify-keyspace-events`, set with CONFIG SET):
//! which event a command that changed a key emits, and its delivery as the
//! Pub/Sub messages Redis sends (`__keyspace@<db>__:<key>` with the event,
//! `__keyevent@<db>__:<event>` with the key).
//!
//! An event is emitted by the node that ran the command (or, for
//! `expired`, by the key's first reachable owner, whose sweeper speaks for
//! every replica) and reaches subscribers on every node: this node's at
//! once, the others' through one ordered background queue, so a slow peer
//! never holds up the write. Like Redis's, notifications are fire and
//! forget: a subscriber that is not connected, or a peer that is down when
//! the event happens, misses it.

use super::reply::Reply;
use super::session::ServerState;
use crate::core::split_db_key;
use crate::kv::Kv;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `K`: `__keyspace@<db>__:<key>` messages.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: `__keyevent@<db>__:<event>` messages.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: DEL, EXPIRE, RENAME, ... (type-independent commands).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key's value expired.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key was evicted (dynkv never evicts: accepted, never emitted).
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands (no streams yet: accepted, never emitted).
pub const STREAM: u32 = 1 << 10;
/// `d`: module events (no modules: accepted, never emitted).
pub const MODULE: u32 = 1 << 11;
/// `m`: key misses (accepted, never emitted; excluded from `A` as in Redis).
pub const KEY_MISS: u32 = 1 << 12;
/// `n`: new keys (accepted, never emitted; excluded from `A` as in Redis).
pub const NEW: u32 = 1 << 13;
/// `A`: `g$lshzxetd`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The class letters in the order Redis prints them.
const LETTERS: &[(char, u32)] = &[
    ('g', GENERIC),
    ('$', STRING),
    ('l', LIST),
    ('s', SET),
    ('h', HASH),
    ('z', ZSET),
    ('x', EXPIRED),
    ('e', EVICTED),
    ('t', STREAM),
    ('d', MODULE),
    ('n', NEW),
];

/// Parses a `notify-keyspace-events` value, with Redis's error text.
pub fn parse_classes(value: &str) -> Result<u32, &'static str> {
    let mut flags = 0;
    for c in value.chars() {
        flags |= match c {
            'A' => ALL,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            'm' => KEY_MISS,
            _ => LETTERS
                .iter()
                .find(|(letter, _)| *letter == c)
                .map(|(_, flag)| *flag)
                .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")?,
        };
    }
    Ok(flags)
}

/// The canonical spelling CONFIG GET answers (`A` for all the classes it
/// covers, then `K`, `E`, `m`).
pub fn classes_to_string(flags: u32) -> String {
    let mut out = String::new();
    if flags & ALL == ALL {
        out.push('A');
        if flags & NEW != 0 {
            out.push('n');
        }
    } else {
        for (letter, flag) in LETTERS {
            if flags & flag != 0 {
                out.push(*letter);
            }
        }
    }
    for (letter, flag) in [('K', KEYSPACE), ('E', KEYEVENT), ('m', KEY_MISS)] {
        if flags & flag != 0 {
            out.push(letter);
        }
    }
    out
}

/// One change a command made to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The class it belongs to (one of the single-class flags).
    pub class: u32,
    /// Redis's event name (`set`, `lpush`, `rename_from`, ...).
    pub name: &'static str,
    /// The key, as the client named it.
    pub key: Bytes,
    /// The database it is in, when not the connection's (MOVE, COPY ... DB).
    pub db: Option<u8>,
}

fn event(class: u32, name: &'static str, key: &Bytes) -> Event {
    Event {
        class,
        name,
        key: key.clone(),
        db: None,
    }
}

/// Events a peer has still to be told of, beyond which new ones are dropped
/// (best effort, as the module comment says).
const PEER_BACKLOG: usize = 65_536;

/// Events handed to peers in one message at most.
const PEER_BATCH: usize = 512;

/// This node's notification settings and the queue to its peers.
#[derive(Debug)]
pub struct Notifier {
    classes: AtomicU32,
    to_peers: mpsc::Sender<(Bytes, Bytes)>,
    queued: parking_lot::Mutex<Option<mpsc::Receiver<(Bytes, Bytes)>>>,
}

impl Default for Notifier {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(PEER_BACKLOG);
        Notifier {
            classes: AtomicU32::new(0),
            to_peers: tx,
            queued: parking_lot::Mutex::new(Some(rx)),
        }
    }
}

impl Notifier {
    /// The configured classes.
    pub fn classes(&self) -> u32 {
        self.classes.load(Ordering::Relaxed)
    }

    /// Sets the classes (CONFIG SET notify-keyspace-events).
    pub fn set_classes(&self, flags: u32) {
        self.classes.store(flags, Ordering::Relaxed);
    }

    /// Whether any command event can be delivered (a channel kind and a
    /// class are both on): the per-command check, so it must be cheap.
    pub fn enabled(&self) -> bool {
        let flags = self.classes();
        flags & (KEYSPACE | KEYEVENT) != 0 && flags & ALL != 0
    }

    /// Delivers `events` of database `db` to this node's subscribers and
    /// queues them for the other nodes'.
    pub fn emit(&self, server: &ServerState, db: u8, events: Vec<Event>) {
        let flags = self.classes();
        for ev in events {
            if flags & ev.class == 0 {
                continue;
            }
            let db = ev.db.unwrap_or(db);
            let mut messages = Vec::with_capacity(2);
            if flags & KEYSPACE != 0 {
                let mut channel = format!("__keyspace@{db}__:").into_bytes();
                channel.extend_from_slice(&ev.key);
                messages.push((Bytes::from(channel), Bytes::from_static(ev.name.as_bytes())));
            }
            if flags & KEYEVENT != 0 {
                let channel = format!("__keyevent@{db}__:{}", ev.name);
                messages.push((Bytes::from(channel), ev.key.clone()));
            }
            for (channel, message) in messages {
                server.pubsub.publish(false, &channel, &message);
                // Full: peers are too far behind; they miss this one.
                let _ = self.to_peers.try_send((channel, message));
            }
        }
    }
}

/// Hands queued events to the other nodes, in order, until `stop`; also
/// turns the node's expired-key reports into `expired` events.
pub async fn deliver<K: Kv + 'static>(
    kv: Arc<K>,
    server: Arc<ServerState>,
    stop: CancellationToken,
) {
    let Some(mut queued) = server.notify.queued.lock().take() else {
        return;
    };
    let mut expired = kv.expired_keys();
    let mut batch = Vec::with_capacity(PEER_BATCH);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            n = queued.recv_many(&mut batch, PEER_BATCH) => {
                if n == 0 {
                    return;
                }
                super::forward::notify_peers(&*kv, std::mem::take(&mut batch)).await;
            }
            key = next_expired(&mut expired) => {
                if let Some(key) = key
                    && server.notify.classes() & EXPIRED != 0
                {
                    let (db, key) = split_db_key(&key);
                    let key = Bytes::copy_from_slice(key);
                    server.notify.emit(&server, db, vec![event(EXPIRED, "expired", &key)]);
                }
            }
        }
    }
}

/// The next expired key reported; pending forever when the store reports
/// none. A listener that fell behind skips what it missed.
async fn next_expired(rx: &mut Option<tokio::sync::broadcast::Receiver<Bytes>>) -> Option<Bytes> {
    use tokio::sync::broadcast::error::RecvError;
    let Some(receiver) = rx.as_mut() else {
        return std::future::pending().await;
    };
    match receiver.recv().await {
        Ok(key) => Some(key),
        Err(RecvError::Lagged(_)) => None,
        Err(RecvError::Closed) => {
            *rx = None;
            None
        }
    }
}

/// Whether a command's reply says it changed something (an error, a nil or
/// a zero count did not).
fn changed(reply: &Reply) -> bool {
    match reply {
        Reply::Error(_) | Reply::Null | Reply::NullArray => false,
        Reply::Int(n) => *n > 0,
        Reply::Array(items) | Reply::Set(items) => !items.is_empty(),
        Reply::Pairs(items) | Reply::Map(items) => !items.is_empty(),
        _ => true,
    }
}

fn has_flag(args: &[Bytes], flag: &str) -> bool {
    args.iter().any(|a| a.eq_ignore_ascii_case(flag.as_bytes()))
}

/// The events of a command that answered `reply`. `existed` tells, for
/// DEL and UNLINK, which of their keys were there before (their reply only
/// counts them).
pub fn events_of(
    name: &str,
    args: &[Bytes],
    reply: &Reply,
    existed: Option<&[bool]>,
    now_ms: u64,
) -> Vec<Event> {
    if matches!(reply, Reply::Error(_)) || args.len() < 2 {
        return Vec::new();
    }
    let key = &args[1];
    let one = |class, ev| vec![event(class, ev, key)];
    let if_changed = |class, ev| {
        if changed(reply) {
            vec![event(class, ev, key)]
        } else {
            Vec::new()
        }
    };
    match name {
        "set" => set_events(args, reply),
        "setnx" => if_changed(STRING, "set"),
        "setex" | "psetex" => vec![event(STRING, "set", key), event(GENERIC, "expire", key)],
        "getset" => one(STRING, "set"),
        "mset" => args[1..]
            .iter()
            .step_by(2)
            .map(|k| event(STRING, "set", k))
            .collect(),
        "msetnx" if changed(reply) => args[1..]
            .iter()
            .step_by(2)
            .map(|k| event(STRING, "set", k))
            .collect(),
        "append" => one(STRING, "append"),
        "incr" | "decr" | "incrby" | "decrby" => one(STRING, "incrby"),
        "incrbyfloat" => one(STRING, "incrbyfloat"),
        "setrange" if args.get(3).is_some_and(|v| !v.is_empty()) => one(STRING, "setrange"),
        "setbit" => one(STRING, "setbit"),
        "bitop" if args.len() > 2 => vec![event(STRING, "set", &args[2])],
        "getdel" => if_changed(GENERIC, "del"),
        "getex" if changed(reply) => {
            if has_flag(args, "persist") {
                one(GENERIC, "persist")
            } else if ["ex", "px", "exat", "pxat"]
                .iter()
                .any(|f| has_flag(args, f))
            {
                one(GENERIC, "expire")
            } else {
                Vec::new()
            }
        }
        "del" | "unlink" => {
            let keys = &args[1..];
            match existed {
                Some(existed) => keys
                    .iter()
                    .zip(existed)
                    .filter(|(_, e)| **e)
                    .map(|(k, _)| event(GENERIC, "del", k))
                    .collect(),
                None if changed(reply) => keys.iter().map(|k| event(GENERIC, "del", k)).collect(),
                None => Vec::new(),
            }
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            // A time already past deletes the key, and Redis says so.
            let past = expiry_ms(name, args.get(2), now_ms).is_some_and(|at| at <= now_ms as i128);
            if_changed(GENERIC, if past { "del" } else { "expire" })
        }
        "persist" => if_changed(GENERIC, "persist"),
        "rename" | "renamenx" if changed(reply) && args.len() > 2 => {
            vec![
                event(GENERIC, "rename_from", key),
                event(GENERIC, "rename_to", &args[2]),
            ]
        }
        "copy" if changed(reply) && args.len() > 2 => {
            let mut to = event(GENERIC, "copy_to", &args[2]);
            to.db = db_option(args);
            vec![to]
        }
        "move" if changed(reply) && args.len() > 2 => {
            let mut to = event(GENERIC, "move_to", key);
            to.db = std::str::from_utf8(&args[2])
                .ok()
                .and_then(|d| d.parse().ok());
            vec![event(GENERIC, "move_from", key), to]
        }
        "lpush" | "lpushx" => if_changed(LIST, "lpush"),
        "rpush" | "rpushx" => if_changed(LIST, "rpush"),
        "lpop" => if_changed(LIST, "lpop"),
        "rpop" => if_changed(LIST, "rpop"),
        "linsert" => if_changed(LIST, "linsert"),
        "lset" => one(LIST, "lset"),
        "lrem" => if_changed(LIST, "lrem"),
        "ltrim" => one(LIST, "ltrim"),
        "blpop" | "brpop" => popped_from(reply)
            .map(|k| {
                vec![event(
                    LIST,
                    if name == "blpop" { "lpop" } else { "rpop" },
                    &k,
                )]
            })
            .unwrap_or_default(),
        "lmpop" | "blmpop" => popped_from(reply)
            .map(|k| {
                let left = has_flag(args, "left");
                vec![event(LIST, if left { "lpop" } else { "rpop" }, &k)]
            })
            .unwrap_or_default(),
        "rpoplpush" | "brpoplpush" if changed(reply) && args.len() > 2 => {
            // Redis announces the push to the destination first.
            vec![event(LIST, "lpush", &args[2]), event(LIST, "rpop", key)]
        }
        "lmove" | "blmove" if changed(reply) && args.len() > 4 => {
            let from = if args[3].eq_ignore_ascii_case(b"left") {
                "lpop"
            } else {
                "rpop"
            };
            let to = if args[4].eq_ignore_ascii_case(b"left") {
                "lpush"
            } else {
                "rpush"
            };
            vec![event(LIST, to, &args[2]), event(LIST, from, key)]
        }
        "hset" | "hmset" => one(HASH, "hset"),
        "hsetnx" => if_changed(HASH, "hset"),
        "hdel" => if_changed(HASH, "hdel"),
        "hincrby" => one(HASH, "hincrby"),
        "hincrbyfloat" => one(HASH, "hincrbyfloat"),
        "sadd" => if_changed(SET, "sadd"),
        "srem" => if_changed(SET, "srem"),
        "spop" => if_changed(SET, "spop"),
        "smove" if changed(reply) && args.len() > 2 => {
            vec![event(SET, "srem", key), event(SET, "sadd", &args[2])]
        }
        "sinterstore" => if_changed(SET, "sinterstore"),
        "sunionstore" => if_changed(SET, "sunionstore"),
        "sdiffstore" => if_changed(SET, "sdiffstore"),
        "zadd" if !matches!(reply, Reply::Null) => one(
            ZSET,
            if has_flag(args, "incr") {
                "zincr"
            } else {
                "zadd"
            },
        ),
        "zincrby" => one(ZSET, "zincr"),
        "zrem" => if_changed(ZSET, "zrem"),
        "zpopmin" => if_changed(ZSET, "zpopmin"),
        "zpopmax" => if_changed(ZSET, "zpopmax"),
        "zremrangebyscore" => if_changed(ZSET, "zrembyscore"),
        "zremrangebyrank" => if_changed(ZSET, "zrembyrank"),
        "zremrangebylex" => if_changed(ZSET, "zrembylex"),
        "zunionstore" => if_changed(ZSET, "zunionstore"),
        "zinterstore" => if_changed(ZSET, "zinterstore"),
        "zdiffstore" => if_changed(ZSET, "zdiffstore"),
        "zrangestore" => if_changed(ZSET, "zrangestore"),
        _ => Vec::new(),
    }
}

/// The events of a command that answered `reply` (see [`events_of`]), with
/// the `del` Redis also announces when a removal left a collection empty
/// (read back from `kv`, only while the generic class is on).
pub async fn events_after<K: Kv>(
    kv: &K,
    server: &ServerState,
    name: &str,
    args: &[Bytes],
    reply: &Reply,
    existed: Option<Vec<bool>>,
) -> Vec<Event> {
    let events = events_of(name, args, reply, existed.as_deref(), kv.now_ms());
    if server.notify.classes() & GENERIC == 0 {
        return events;
    }
    let emptied = may_empty(&events);
    if emptied.is_empty() {
        return events;
    }
    let present = super::cmd::keys::existing(kv, &emptied).await;
    let gone: Vec<Bytes> = emptied
        .into_iter()
        .zip(present)
        .filter(|(_, present)| !present)
        .map(|(key, _)| key)
        .collect();
    with_deletions(events, &gone)
}

/// Events that take elements out of a collection (and may empty it).
const REMOVALS: &[&str] = &[
    "lpop",
    "rpop",
    "lrem",
    "ltrim",
    "hdel",
    "srem",
    "spop",
    "zrem",
    "zpopmin",
    "zpopmax",
    "zrembyscore",
    "zrembyrank",
    "zrembylex",
];

fn is_removal(ev: &Event) -> bool {
    ev.db.is_none() && REMOVALS.contains(&ev.name)
}

/// Keys whose elements these events removed, each once: one that is gone
/// afterwards was emptied by the command.
fn may_empty(events: &[Event]) -> Vec<Bytes> {
    let mut keys: Vec<Bytes> = Vec::new();
    for ev in events.iter().filter(|ev| is_removal(ev)) {
        if !keys.contains(&ev.key) {
            keys.push(ev.key.clone());
        }
    }
    keys
}

/// `events` with a `del` after the removal that emptied each of `gone`,
/// where Redis announces it.
fn with_deletions(events: Vec<Event>, gone: &[Bytes]) -> Vec<Event> {
    let mut out = Vec::with_capacity(events.len() + gone.len());
    let mut announced: Vec<Bytes> = Vec::new();
    for ev in events {
        let emptied = is_removal(&ev) && gone.contains(&ev.key) && !announced.contains(&ev.key);
        let key = ev.key.clone();
        out.push(ev);
        if emptied {
            out.push(event(GENERIC, "del", &key));
            announced.push(key);
        }
    }
    out
}

/// SET's events: `set` when it stored (NX/XX may refuse; with GET the reply
/// is the old value, so refusal is read off it), and `expire` with a TTL.
fn set_events(args: &[Bytes], reply: &Reply) -> Vec<Event> {
    let key = &args[1];
    let rest = &args[3.min(args.len())..];
    let (nx, xx, get) = (
        has_flag(rest, "nx"),
        has_flag(rest, "xx"),
        has_flag(rest, "get"),
    );
    let nil = matches!(reply, Reply::Null);
    let stored = if get {
        // XX refused: no old value; NX refused: there was one.
        let refused = (xx && nil) || (nx && !nil);
        !refused
    } else {
        !nil
    };
    if !stored {
        return Vec::new();
    }
    let mut events = vec![event(STRING, "set", key)];
    if ["ex", "px", "exat", "pxat"]
        .iter()
        .any(|f| has_flag(rest, f))
    {
        events.push(event(GENERIC, "expire", key));
    }
    events
}

/// When an EXPIRE-family command's time argument falls, in ms since the
/// epoch (wide, so no argument overflows).
fn expiry_ms(name: &str, arg: Option<&Bytes>, now_ms: u64) -> Option<i128> {
    let n: i128 = std::str::from_utf8(arg?).ok()?.parse::<i64>().ok()?.into();
    Some(match name {
        "expire" => now_ms as i128 + n * 1000,
        "pexpire" => now_ms as i128 + n,
        "expireat" => n * 1000,
        _ => n,
    })
}

/// COPY's `DB n` option.
fn db_option(args: &[Bytes]) -> Option<u8> {
    let at = args.iter().position(|a| a.eq_ignore_ascii_case(b"db"))?;
    std::str::from_utf8(args.get(at + 1)?).ok()?.parse().ok()
}

/// The key a blocking or multi-key pop took from (its reply's first item).
fn popped_from(reply: &Reply) -> Option<Bytes> {
    match reply {
        Reply::Array(items) => match items.first() {
            Some(Reply::Bulk(key)) => Some(key.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn classes_round_trip_as_redis_spells_them() {
        assert_eq!(
            classes_to_string(parse_classes("KEA").expect("valid")),
            "AKE"
        );
        assert_eq!(
            classes_to_string(parse_classes("Kg$xe").expect("valid")),
            "g$xeK"
        );
        assert_eq!(classes_to_string(parse_classes("").expect("valid")), "");
        assert!(parse_classes("Kq").is_err());
    }

    #[test]
    fn refused_writes_emit_nothing() {
        assert!(
            events_of(
                "set",
                &args(&["set", "k", "v", "NX"]),
                &Reply::Null,
                None,
                0
            )
            .is_empty()
        );
        assert!(events_of("sadd", &args(&["sadd", "s", "m"]), &Reply::Int(0), None, 0).is_empty());
        assert!(events_of("del", &args(&["del", "a"]), &Reply::Int(0), None, 0).is_empty());
        assert!(events_of("incr", &args(&["incr", "k"]), &Reply::err("x"), None, 0).is_empty());
    }

    #[test]
    fn commands_name_redis_events() {
        let names = |name: &str, words: &[&str], reply: Reply| -> Vec<(&'static str, Bytes)> {
            events_of(name, &args(words), &reply, None, 1_000_000)
                .into_iter()
                .map(|e| (e.name, e.key))
                .collect()
        };
        assert_eq!(
            names("set", &["set", "k", "v", "EX", "10"], Reply::ok()),
            vec![("set", Bytes::from("k")), ("expire", Bytes::from("k"))]
        );
        assert_eq!(
            names("rename", &["rename", "a", "b"], Reply::ok()),
            vec![
                ("rename_from", Bytes::from("a")),
                ("rename_to", Bytes::from("b"))
            ]
        );
        assert_eq!(
            names(
                "lmove",
                &["lmove", "a", "b", "LEFT", "RIGHT"],
                Reply::bulk("x")
            ),
            vec![("rpush", Bytes::from("b")), ("lpop", Bytes::from("a"))]
        );
        assert_eq!(
            names("expire", &["expire", "k", "0"], Reply::Int(1)),
            vec![("del", Bytes::from("k"))]
        );
        assert_eq!(
            names("pexpireat", &["pexpireat", "k", "999999"], Reply::Int(1)),
            vec![("del", Bytes::from("k"))]
        );
        assert_eq!(
            names("expire", &["expire", "k", "10"], Reply::Int(1)),
            vec![("expire", Bytes::from("k"))]
        );
        let existed = [true, false, true];
        let dels: Vec<Bytes> = events_of(
            "del",
            &args(&["del", "a", "b", "c"]),
            &Reply::Int(2),
            Some(&existed),
            0,
        )
        .into_iter()
        .map(|e| e.key)
        .collect();
        assert_eq!(dels, vec![Bytes::from("a"), Bytes::from("c")]);
    }
}
