//! String commands: GET, SET and its variants, counters, APPEND, MGET/MSET.
//!
//! Reads resolve siblings to the deterministic winner; read-modify-writes go
//! through [`Kv::modify`], so they supersede every version the coordinator
//! holds, as a Redis user expects of "last writer wins".

use super::typed::wrong_type;
use super::{CmdResult, is, kv_error, parse_f64, parse_i64, syntax_error, wrong_arity};
use crate::core::crdt::{Amount, Counter, TypedValue};
use crate::kv::{Change, Kv, LiveValue, ReadOptions};
use crate::resp::reply::{Reply, format_double};
use crate::resp::session::ServerState;
use bytes::Bytes;

/// Runs a string command.
pub async fn run<K: Kv>(kv: &K, server: &ServerState, name: &str, args: &[Bytes]) -> CmdResult {
    let key = || args[1].clone();
    match name {
        "get" => Ok(Reply::bulk_or_null(
            read_string(kv, key()).await?.map(|v| v.data),
        )),
        "set" => set(kv, args).await,
        "setnx" => {
            let value = args[2].clone();
            let set = kv
                .modify(key(), move |cur, _| match cur {
                    Some(_) => (Change::Keep, 0),
                    None => (write(value, None), 1),
                })
                .await
                .map_err(kv_error)?;
            Ok(Reply::Int(set))
        }
        "setex" | "psetex" => {
            let amount = parse_i64(&args[2])?;
            let unit = if name == "setex" { 1000 } else { 1 };
            let ttl = amount
                .checked_mul(unit)
                .filter(|&ms| ms > 0)
                .ok_or_else(|| Reply::err(format!("invalid expire time in '{name}' command")))?;
            let expires = kv
                .now_ms()
                .checked_add(ttl as u64)
                .ok_or_else(|| Reply::err(format!("invalid expire time in '{name}' command")))?;
            kv.overwrite(key(), write(args[3].clone(), Some(expires)))
                .await
                .map_err(kv_error)?;
            Ok(Reply::ok())
        }
        "getset" => {
            let value = args[2].clone();
            let old = kv
                .modify(key(), move |cur, _| match not_string(&cur) {
                    Some(e) => (Change::Keep, Err(e)),
                    None => (write(value, None), Ok(cur.map(|v| v.data))),
                })
                .await
                .map_err(kv_error)?;
            Ok(Reply::bulk_or_null(old?))
        }
        "getdel" => {
            let old = kv
                .modify(key(), |cur, _| match cur {
                    Some(v) if !v.is_string() => (Change::Keep, Err(wrong_type())),
                    Some(v) => (Change::Delete, Ok(Some(v.data))),
                    None => (Change::Keep, Ok(None)),
                })
                .await
                .map_err(kv_error)?;
            Ok(Reply::bulk_or_null(old?))
        }
        "getex" => getex(kv, args).await,
        "mget" => {
            let mut out = Vec::with_capacity(args.len() - 1);
            for k in &args[1..] {
                // As in Redis, a key of another type reads as nil here.
                out.push(Reply::bulk_or_null(
                    read(kv, k.clone())
                        .await?
                        .filter(LiveValue::is_string)
                        .map(|v| v.data),
                ));
            }
            Ok(Reply::Array(out))
        }
        "mset" | "msetnx" => mset(kv, name, args).await,
        "strlen" => Ok(Reply::Int(
            read_string(kv, key())
                .await?
                .map_or(0, |v| v.data.len() as i64),
        )),
        "append" => {
            let suffix = args[2].clone();
            // The client port refuses longer bulks; a value grown past the
            // limit would be just as impossible to send to the replicas.
            let max = server.proto_max_bulk_len();
            let len = kv
                .modify(key(), move |cur, _| {
                    if let Some(e) = not_string(&cur) {
                        return (Change::Keep, Err(e));
                    }
                    let current = cur.as_ref().map_or(0, |v| v.data.len());
                    // As in Redis, checked even for an empty suffix.
                    if current.saturating_add(suffix.len()) > max {
                        return (Change::Keep, Err(string_too_long()));
                    }
                    let (mut data, ttl) = match cur {
                        Some(v) => (v.data.to_vec(), v.expires_at_ms),
                        None => (Vec::new(), None),
                    };
                    data.extend_from_slice(&suffix);
                    let len = data.len() as i64;
                    (write(Bytes::from(data), ttl), Ok(len))
                })
                .await
                .map_err(kv_error)?;
            len.map(Reply::Int)
        }
        "setrange" | "getrange" | "substr" => super::bits::run(kv, server, name, args).await,
        "incr" => incr_by(kv, key(), 1).await,
        "decr" => incr_by(kv, key(), -1).await,
        "incrby" => incr_by(kv, key(), parse_i64(&args[2])?).await,
        "decrby" => {
            let by = parse_i64(&args[2])?;
            let negated = by
                .checked_neg()
                .ok_or_else(|| Reply::err("decrement would overflow"))?;
            incr_by(kv, key(), negated).await
        }
        "incrbyfloat" => incr_by_float(kv, key(), parse_f64(&args[2])?).await,
        _ => Err(Reply::err(format!("'{name}' is not a string command"))),
    }
}

/// Redis's reply when a command would grow a string past
/// `proto-max-bulk-len`.
pub(super) fn string_too_long() -> Reply {
    Reply::err("string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// The live winner of `key`.
pub async fn read<K: Kv>(kv: &K, key: Bytes) -> Result<Option<LiveValue>, Reply> {
    let obj = kv
        .get(key, ReadOptions::default())
        .await
        .map_err(kv_error)?;
    let now = kv.now_ms();
    Ok(LiveValue::of(&obj, now))
}

/// The live winner of `key` if string commands may read it; WRONGTYPE
/// for a collection.
pub async fn read_string<K: Kv>(kv: &K, key: Bytes) -> Result<Option<LiveValue>, Reply> {
    match read(kv, key).await? {
        Some(v) if !v.is_string() => Err(wrong_type()),
        other => Ok(other),
    }
}

/// WRONGTYPE when `cur` is a collection.
pub(super) fn not_string(cur: &Option<LiveValue>) -> Option<Reply> {
    cur.as_ref()
        .filter(|v| !v.is_string())
        .map(|_| wrong_type())
}

pub(super) fn write(data: Bytes, expires_at_ms: Option<u64>) -> Change {
    Change::Write {
        data,
        expires_at_ms,
        flags: 0,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    Always,
    IfAbsent,
    IfPresent,
}

/// What SET / GETEX do to the expiry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expiry {
    /// SET without options: clear it.
    Clear,
    /// KEEPTTL (or GETEX without options): leave it.
    Keep,
    /// Absolute deadline in ms.
    At(u64),
}

/// Parses `EX s | PX ms | EXAT s | PXAT ms` at `args[i]`; returns the deadline.
fn parse_expiry(kv_now: u64, option: &[u8], value: &[u8], cmd: &str) -> Result<u64, Reply> {
    let invalid = || Reply::err(format!("invalid expire time in '{cmd}' command"));
    let n = parse_i64(value)?;
    if n <= 0 {
        return Err(invalid());
    }
    let n = n as u64;
    let at = if is(option, "EX") {
        n.checked_mul(1000).and_then(|ms| kv_now.checked_add(ms))
    } else if is(option, "PX") {
        kv_now.checked_add(n)
    } else if is(option, "EXAT") {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    at.filter(|&at| at < i64::MAX as u64).ok_or_else(invalid)
}

fn is_expiry_option(arg: &[u8]) -> bool {
    ["EX", "PX", "EXAT", "PXAT"].iter().any(|o| is(arg, o))
}

async fn set<K: Kv>(kv: &K, args: &[Bytes]) -> CmdResult {
    let now = kv.now_ms();
    let mut condition = Condition::Always;
    let mut expiry = Expiry::Clear;
    // Which expiry option was given: repeating one is fine (the last wins,
    // as in Redis); mixing two is a syntax error.
    let mut expiry_kind: Option<String> = None;
    let mut get = false;
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        if is(opt, "NX") && condition != Condition::IfPresent {
            condition = Condition::IfAbsent;
        } else if is(opt, "XX") && condition != Condition::IfAbsent {
            condition = Condition::IfPresent;
        } else if is(opt, "GET") {
            get = true;
        } else if (is(opt, "KEEPTTL") || (is_expiry_option(opt) && i + 1 < args.len()))
            && expiry_kind
                .as_deref()
                .is_none_or(|k| k.as_bytes().eq_ignore_ascii_case(opt))
        {
            expiry_kind = Some(String::from_utf8_lossy(opt).into_owned());
            if is(opt, "KEEPTTL") {
                expiry = Expiry::Keep;
            } else {
                expiry = Expiry::At(parse_expiry(now, opt, &args[i + 1], "set")?);
                i += 1;
            }
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    let value = args[2].clone();
    if condition == Condition::Always && !get && expiry != Expiry::Keep {
        let expires = match expiry {
            Expiry::At(at) => Some(at),
            _ => None,
        };
        kv.overwrite(args[1].clone(), write(value, expires))
            .await
            .map_err(kv_error)?;
        return Ok(Reply::ok());
    }
    let (applied, old) = kv
        .modify(args[1].clone(), move |cur, _| {
            if get && let Some(e) = not_string(&cur) {
                return (Change::Keep, Err(e));
            }
            let old = cur.as_ref().map(|v| v.data.clone());
            let ok = match condition {
                Condition::Always => true,
                Condition::IfAbsent => cur.is_none(),
                Condition::IfPresent => cur.is_some(),
            };
            if !ok {
                return (Change::Keep, Ok((false, old)));
            }
            let expires = match expiry {
                Expiry::Clear => None,
                Expiry::Keep => cur.and_then(|v| v.expires_at_ms),
                Expiry::At(at) => Some(at),
            };
            (write(value, expires), Ok((true, old)))
        })
        .await
        .map_err(kv_error)??;
    Ok(match (get, applied) {
        (true, _) => Reply::bulk_or_null(old),
        (false, true) => Reply::ok(),
        (false, false) => Reply::Null,
    })
}

async fn getex<K: Kv>(kv: &K, args: &[Bytes]) -> CmdResult {
    let now = kv.now_ms();
    let expiry = match &args[2..] {
        [] => Expiry::Keep,
        [opt] if is(opt, "PERSIST") => Expiry::Clear,
        [opt, value] if is_expiry_option(opt) => {
            Expiry::At(parse_expiry(now, opt, value, "getex")?)
        }
        _ => return Err(syntax_error()),
    };
    if expiry == Expiry::Keep {
        return Ok(Reply::bulk_or_null(
            read_string(kv, args[1].clone()).await?.map(|v| v.data),
        ));
    }
    let old = kv
        .modify(args[1].clone(), move |cur, _| match cur {
            None => (Change::Keep, Ok(None)),
            Some(v) if !v.is_string() => (Change::Keep, Err(wrong_type())),
            Some(v) => {
                let expires = match expiry {
                    Expiry::At(at) => Some(at),
                    _ => None,
                };
                if expires == v.expires_at_ms {
                    return (Change::Keep, Ok(Some(v.data)));
                }
                let data = v.data.clone();
                (v.with_expiry(expires), Ok(Some(data)))
            }
        })
        .await
        .map_err(kv_error)?;
    Ok(Reply::bulk_or_null(old?))
}

async fn mset<K: Kv>(kv: &K, name: &str, args: &[Bytes]) -> CmdResult {
    if args.len() % 2 != 1 {
        return Err(wrong_arity(name));
    }
    let pairs = args[1..].chunks_exact(2);
    if name == "msetnx" {
        // Not atomic across keys: in a Dynamo each key has its own replicas,
        // so this is "check all, then write all" (documented in the README).
        for pair in pairs.clone() {
            if read(kv, pair[0].clone()).await?.is_some() {
                return Ok(Reply::Int(0));
            }
        }
    }
    for pair in pairs {
        kv.overwrite(pair[0].clone(), write(pair[1].clone(), None))
            .await
            .map_err(kv_error)?;
    }
    Ok(if name == "msetnx" {
        Reply::Int(1)
    } else {
        Reply::ok()
    })
}

/// The counter a key holds, for INCR and friends: a counter as it is, a
/// numeric string as a counter reset to its value, an absent key as 0.
fn counter_of(cur: Option<LiveValue>, float: bool) -> Result<(Counter, Option<u64>), Reply> {
    match cur {
        None => Ok((Counter::new(), None)),
        Some(v) => match v.typed {
            Some(TypedValue::Counter(c)) => Ok((c, v.expires_at_ms)),
            Some(_) => Err(wrong_type()),
            None if float => {
                let mut c = Counter::with_base(Amount::float(parse_f64(&v.data)?));
                c.mark_float();
                Ok((c, v.expires_at_ms))
            }
            None => Ok((
                Counter::with_base(Amount::int(parse_i64(&v.data)?)),
                v.expires_at_ms,
            )),
        },
    }
}

/// INCRBY and friends: the key becomes a counter whose concurrent
/// increments through different nodes add up.
async fn incr_by<K: Kv>(kv: &K, key: Bytes, by: i64) -> CmdResult {
    let result = kv
        .modify(key, move |cur, _| {
            let (mut counter, ttl) = match counter_of(cur, false) {
                Ok(c) => c,
                Err(e) => return (Change::Keep, Err(e)),
            };
            let current = match parse_i64(counter.render().as_bytes()) {
                Ok(n) => n,
                Err(e) => return (Change::Keep, Err(e)),
            };
            match current.checked_add(by) {
                Some(next) => {
                    counter.add(Amount::int(by));
                    (
                        Change::WriteTyped {
                            value: TypedValue::Counter(counter),
                            expires_at_ms: ttl,
                        },
                        Ok(next),
                    )
                }
                None => (
                    Change::Keep,
                    Err(Reply::err("increment or decrement would overflow")),
                ),
            }
        })
        .await
        .map_err(kv_error)?;
    result.map(Reply::Int)
}

/// INCRBYFLOAT: a counter too, shown as a float from then on.
async fn incr_by_float<K: Kv>(kv: &K, key: Bytes, by: f64) -> CmdResult {
    let result = kv
        .modify(key, move |cur, _| {
            let (mut counter, ttl) = match counter_of(cur, true) {
                Ok(c) => c,
                Err(e) => return (Change::Keep, Err(e)),
            };
            let current = match parse_f64(counter.render().as_bytes()) {
                Ok(n) => n,
                Err(e) => return (Change::Keep, Err(e)),
            };
            let next = current + by;
            if !next.is_finite() {
                return (
                    Change::Keep,
                    Err(Reply::err("increment would produce NaN or Infinity")),
                );
            }
            counter.add(Amount::float(by));
            counter.mark_float();
            (
                Change::WriteTyped {
                    value: TypedValue::Counter(counter),
                    expires_at_ms: ttl,
                },
                Ok(format_double(next)),
            )
        })
        .await
        .map_err(kv_error)?;
    result.map(Reply::bulk)
}
