//! Running meta commands: the same store operations as the text
//! commands (and the same serialising node for the conditional ones),
//! answered with meta reply codes and return flags.

use super::command::Command;
use super::exptime::{Expiry, resolve_exptime};
use super::forward;
use super::meta::{Flags, MetaCommand, Returned, return_flags};
use super::ops::{
    Session, joined, line, read, server_error, step_counter, stored_key, string_change, touch,
};
use super::state::{MemcacheState, Stats};
use crate::core::crdt::{Amount, Counter, TypedValue};
use crate::kv::{Change, Kv, KvError, LiveValue};
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;

/// Seconds a value has left, as `t` returns it (-1: never expires).
fn ttl_secs(expires_at_ms: Option<u64>, now_ms: u64) -> i64 {
    match expires_at_ms {
        None => -1,
        Some(at) => at.saturating_sub(now_ms).div_ceil(1000) as i64,
    }
}

/// The cas token of the meta protocol: the 64-bit unique folded to 32
/// bits, because meta clients read it as 32 bits (meta-memcache's parser
/// drops a larger token, which would turn every compare-and-set into a
/// blind write). A stale token then matches by chance once in 2^32.
pub fn meta_cas(unique: u64) -> u64 {
    (((unique >> 32) ^ unique) & 0xFFFF_FFFF).max(1)
}

fn returned(v: &LiveValue, now_ms: u64) -> Returned {
    Returned {
        cas: Some(meta_cas(v.cas)),
        client_flags: Some(v.flags),
        size: Some(v.data.len()),
        ttl: Some(ttl_secs(v.expires_at_ms, now_ms)),
    }
}

/// Runs one meta command, appending its reply to `out`.
pub async fn run<K: Kv + 'static>(
    kv: &Arc<K>,
    state: &MemcacheState,
    session: &Session,
    cmd: MetaCommand,
    out: &mut BytesMut,
) {
    if cmd.is_conditional()
        && !session.forwarded
        && let Some(key) = cmd.key()
        && let Some(reply) =
            forward::to_serialising_node(&**kv, &stored_key(key), &Command::Meta(cmd.clone())).await
    {
        out.put_slice(&reply);
        return;
    }
    let kv = &**kv;
    let result = match cmd {
        MetaCommand::Noop => {
            line(out, "MN");
            Ok(())
        }
        MetaCommand::Get { key, flags } => get(kv, state, key, flags, out).await,
        MetaCommand::Set { key, data, flags } => set(kv, state, key, data, flags, out).await,
        MetaCommand::Delete { key, flags } => delete(kv, state, key, flags, out).await,
        MetaCommand::Arith { key, flags } => arith(kv, state, key, flags, out).await,
        MetaCommand::Debug { key } => debug(kv, key, out).await,
    };
    if let Err(reply) = result {
        line(out, &reply);
    }
}

fn number<T: std::str::FromStr>(flags: &Flags, letter: u8) -> Result<Option<T>, String> {
    flags.number(letter).map_err(str::to_string)
}

async fn get<K: Kv>(
    kv: &K,
    state: &MemcacheState,
    key: Bytes,
    flags: Flags,
    out: &mut BytesMut,
) -> Result<(), String> {
    let stored = stored_key(&key);
    let stats = &state.stats;
    Stats::bump(&stats.cmd_get);
    let value = match number::<i64>(&flags, b'T')? {
        Some(exptime) => {
            Stats::bump(&stats.cmd_touch);
            match touch(kv, stored.clone(), exptime).await {
                // After the touch, for its new expiry and cas.
                Ok(Some(_)) => read(kv, stored).await,
                other => other,
            }
        }
        None => read(kv, stored).await,
    };
    let now = kv.now_ms();
    match value.map_err(|e| server_error(&e))? {
        None => {
            Stats::bump(&stats.get_misses);
            if !flags.has(b'q') {
                line(out, "EN");
            }
        }
        Some(v) => {
            Stats::bump(&stats.get_hits);
            let rf = return_flags(&key, &flags, &returned(&v, now));
            if flags.has(b'v') {
                line(out, &format!("VA {}{rf}", v.data.len()));
                out.put_slice(&v.data);
                out.put_slice(b"\r\n");
            } else {
                line(out, &format!("HD{rf}"));
            }
        }
    }
    Ok(())
}

/// What a conditional meta write found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    Done,
    NotStored,
    Exists,
    Missing,
    TooLarge,
}

/// memcached's meta reply for a write outcome.
fn code(found: Found) -> &'static str {
    match found {
        Found::Done => "HD",
        Found::NotStored => "NS",
        Found::Exists => "EX",
        Found::Missing => "NF",
        Found::TooLarge => "SERVER_ERROR out of memory storing object",
    }
}

/// Writes the reply line of a write: return flags on HD (with the cas the
/// write produced, read back, when `c` asks for it); `q` hides HD.
async fn answer_write<K: Kv>(
    kv: &K,
    key: &Bytes,
    flags: &Flags,
    found: Found,
    quiet: &[Found],
    out: &mut BytesMut,
) -> Result<(), String> {
    if flags.has(b'q') && quiet.contains(&found) {
        return Ok(());
    }
    if found != Found::Done {
        line(out, code(found));
        return Ok(());
    }
    let mut got = Returned::default();
    if flags.has(b'c') || flags.has(b't') {
        let now = kv.now_ms();
        if let Some(v) = read(kv, stored_key(key))
            .await
            .map_err(|e| server_error(&e))?
        {
            got = returned(&v, now);
        }
    }
    line(out, &format!("HD{}", return_flags(key, flags, &got)));
    Ok(())
}

async fn set<K: Kv>(
    kv: &K,
    state: &MemcacheState,
    key: Bytes,
    data: Bytes,
    flags: Flags,
    out: &mut BytesMut,
) -> Result<(), String> {
    Stats::bump(&state.stats.cmd_set);
    let client_flags = number::<u32>(&flags, b'F')?.unwrap_or(0);
    let expiry = resolve_exptime(number::<i64>(&flags, b'T')?.unwrap_or(0), kv.now_ms());
    let compare = number::<u64>(&flags, b'C')?;
    let mode = match flags.token(b'M').map(|m| m.as_ref()) {
        None | Some(b"S" | b"s") => b'S',
        Some(b"E" | b"e") => b'E',
        Some(b"A" | b"a") => b'A',
        Some(b"P" | b"p") => b'P',
        Some(b"R" | b"r") => b'R',
        Some(_) => return Err("CLIENT_ERROR invalid mode for ms".into()),
    };
    let max_item = state.max_item;
    let stored = stored_key(&key);
    let found = if mode == b'S' && compare.is_none() {
        kv.overwrite(stored, string_change(data, expiry, client_flags))
            .await
            .map_err(|e| server_error(&e))?;
        Found::Done
    } else {
        kv.modify(stored, move |cur, _| {
            let cur = cur.filter(LiveValue::is_string);
            match (&cur, compare) {
                (None, Some(_)) => return (Change::Keep, Found::Missing),
                (Some(v), Some(c)) if meta_cas(v.cas) != c => return (Change::Keep, Found::Exists),
                _ => {}
            }
            match (mode, cur) {
                (b'E', Some(_)) | (b'R' | b'A' | b'P', None) => (Change::Keep, Found::NotStored),
                (b'A' | b'P', Some(v)) => match joined(&v, &data, mode == b'A', max_item) {
                    Some(change) => (change, Found::Done),
                    None => (Change::Keep, Found::TooLarge),
                },
                _ => (string_change(data, expiry, client_flags), Found::Done),
            }
        })
        .await
        .map_err(|e| server_error(&e))?
    };
    if compare.is_some() {
        let stats = &state.stats;
        Stats::bump(match found {
            Found::Done => &stats.cas_hits,
            Found::Exists => &stats.cas_badval,
            _ => &stats.cas_misses,
        });
    }
    answer_write(kv, &key, &flags, found, &[Found::Done], out).await
}

async fn delete<K: Kv>(
    kv: &K,
    state: &MemcacheState,
    key: Bytes,
    flags: Flags,
    out: &mut BytesMut,
) -> Result<(), String> {
    let compare = number::<u64>(&flags, b'C')?;
    let found = kv
        .modify(stored_key(&key), move |cur, _| match (cur, compare) {
            (None, _) => (Change::Keep, Found::Missing),
            (Some(v), Some(c)) if meta_cas(v.cas) != c => (Change::Keep, Found::Exists),
            (Some(_), _) => (Change::Delete, Found::Done),
        })
        .await
        .map_err(|e| server_error(&e))?;
    let stats = &state.stats;
    Stats::bump(match found {
        Found::Done => &stats.delete_hits,
        _ => &stats.delete_misses,
    });
    // md answers nothing of the key after deleting it.
    let flags = Flags(
        flags
            .0
            .into_iter()
            .filter(|f| !matches!(f.letter, b'c' | b't'))
            .collect(),
    );
    answer_write(kv, &key, &flags, found, &[Found::Done], out).await
}

async fn arith<K: Kv>(
    kv: &K,
    state: &MemcacheState,
    key: Bytes,
    flags: Flags,
    out: &mut BytesMut,
) -> Result<(), String> {
    let incr = match flags.token(b'M').map(|m| m.as_ref()) {
        None | Some(b"I" | b"i" | b"+") => true,
        Some(b"D" | b"d" | b"-") => false,
        Some(_) => return Err("CLIENT_ERROR invalid mode for ma".into()),
    };
    let delta = number::<u64>(&flags, b'D')?.unwrap_or(1);
    let vivify = number::<i64>(&flags, b'N')?;
    let initial = number::<u64>(&flags, b'J')?.unwrap_or(0);
    let compare = number::<u64>(&flags, b'C')?;
    let now = kv.now_ms();
    let new_expiry = number::<i64>(&flags, b'T')?.map(|t| resolve_exptime(t, now));
    let at = move |e: Expiry| match e {
        Expiry::Never => None,
        Expiry::At(at) => Some(at),
        Expiry::Expired => Some(now),
    };
    let result = kv
        .modify(stored_key(&key), move |cur, _| {
            let Some(v) = cur else {
                // N: a miss creates the counter at J, with N as its exptime.
                return match vivify {
                    Some(ttl) => {
                        let expires = at(resolve_exptime(ttl, now));
                        let change = match i64::try_from(initial) {
                            Ok(base) => Change::WriteTyped {
                                value: TypedValue::Counter(Counter::with_base(Amount::int(base))),
                                expires_at_ms: expires,
                            },
                            Err(_) => Change::Write {
                                data: Bytes::from(initial.to_string()),
                                expires_at_ms: expires,
                                flags: 0,
                            },
                        };
                        (change, Ok((Found::Done, initial)))
                    }
                    None => (Change::Keep, Ok((Found::Missing, 0))),
                };
            };
            if compare.is_some_and(|c| c != meta_cas(v.cas)) {
                return (Change::Keep, Ok((Found::Exists, 0)));
            }
            let expires = new_expiry.map_or(v.expires_at_ms, at);
            match step_counter(&v, delta, incr, expires) {
                Ok((change, next)) => (change, Ok((Found::Done, next))),
                Err(e) => (Change::Keep, Err(e)),
            }
        })
        .await
        .map_err(|e: KvError| server_error(&e))?;
    let (found, value) = result.map_err(str::to_string)?;
    let stats = &state.stats;
    let (hits, misses) = if incr {
        (&stats.incr_hits, &stats.incr_misses)
    } else {
        (&stats.decr_hits, &stats.decr_misses)
    };
    Stats::bump(if found == Found::Done { hits } else { misses });
    if found != Found::Done || !flags.has(b'v') {
        return answer_write(kv, &key, &flags, found, &[Found::Done], out).await;
    }
    let mut got = Returned::default();
    if (flags.has(b'c') || flags.has(b't'))
        && let Some(v) = read(kv, stored_key(&key))
            .await
            .map_err(|e| server_error(&e))?
    {
        got = returned(&v, kv.now_ms());
    }
    let text = value.to_string();
    line(
        out,
        &format!("VA {}{}", text.len(), return_flags(&key, &flags, &got)),
    );
    line(out, &text);
    Ok(())
}

async fn debug<K: Kv>(kv: &K, key: Bytes, out: &mut BytesMut) -> Result<(), String> {
    let now = kv.now_ms();
    match read(kv, stored_key(&key))
        .await
        .map_err(|e| server_error(&e))?
    {
        None => line(out, "EN"),
        Some(v) => line(
            out,
            &format!(
                "ME {} exp={} la=0 cas={} fetch=no cls=1 size={}",
                String::from_utf8_lossy(&key),
                ttl_secs(v.expires_at_ms, now),
                meta_cas(v.cas),
                v.data.len()
            ),
        ),
    }
    Ok(())
}
