//! Running meta commands: the same store operations as the text
//! commands (and the same serialising node for the conditional ones),
//! answered with meta reply codes and return flags.

use super::command::Command;
use super::exptime::{expires_at, resolve_exptime};
use super::forward;
use super::lease::{Decided, Lease, decide};
use super::meta::{BAD_TOKEN, Flags, MetaCommand, Returned, return_flags};
use super::ops::{
    Session, joined, line, read, server_error, step_counter, stored_key, string_change, touch,
};
use super::state::{MemcacheState, Stats};
use crate::core::crdt::{Amount, Counter, TypedValue};
use crate::core::{ItemCas, ItemMeta};
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
/// blind write). A stale token then matches by chance once in 2^32. A cas
/// the client chose (`E`) is its own: handed back as given.
pub fn meta_cas(v: &LiveValue) -> u64 {
    match v.meta.cas {
        Some(ItemCas::Chosen(c)) => c,
        _ => (((v.cas >> 32) ^ v.cas) & 0xFFFF_FFFF).max(1),
    }
}

fn returned(v: &LiveValue, now_ms: u64) -> Returned {
    Returned {
        cas: Some(meta_cas(v)),
        client_flags: Some(v.flags),
        size: Some(v.data.len()),
        ttl: Some(ttl_secs(v.expires_at_ms, now_ms)),
        ..Returned::default()
    }
}

/// `change` storing `chosen` (meta `E`) as the item's cas. A counter
/// becomes its number as a string: only a string item carries a cas.
fn with_chosen_cas(change: Change, chosen: Option<u64>) -> Change {
    let Some(c) = chosen else {
        return change;
    };
    let meta = ItemMeta {
        cas: Some(ItemCas::Chosen(c)),
        ..ItemMeta::default()
    };
    match change {
        Change::Write {
            data,
            expires_at_ms,
            flags,
        }
        | Change::WriteItem {
            data,
            expires_at_ms,
            flags,
            ..
        } => Change::WriteItem {
            data,
            expires_at_ms,
            flags,
            meta,
        },
        Change::WriteTyped {
            value: TypedValue::Counter(counter),
            expires_at_ms,
        } => Change::WriteItem {
            data: Bytes::from(counter.render()),
            expires_at_ms,
            flags: 0,
            meta,
        },
        other => other,
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
    // memcached's md and ma answer any unreadable flag token this way.
    let bad_token = match cmd {
        MetaCommand::Delete { .. } | MetaCommand::Arith { .. } => {
            "CLIENT_ERROR invalid or duplicate flag"
        }
        _ => BAD_TOKEN,
    };
    let result = match cmd {
        MetaCommand::Noop => {
            line(out, "MN");
            Ok(())
        }
        MetaCommand::Get { key, flags } => get(kv, state, session, key, flags, out).await,
        MetaCommand::Set { key, data, flags } => set(kv, state, key, data, flags, out).await,
        MetaCommand::Delete { key, flags } => delete(kv, state, key, flags, out).await,
        MetaCommand::Arith { key, flags } => arith(kv, state, key, flags, out).await,
        MetaCommand::Debug { key } => debug(kv, key, out).await,
    };
    if let Err(reply) = result {
        line(
            out,
            if reply == BAD_TOKEN {
                bad_token
            } else {
                &reply
            },
        );
    }
}

fn number<T: std::str::FromStr>(flags: &Flags, letter: u8) -> Result<Option<T>, String> {
    flags.number(letter).map_err(str::to_string)
}

async fn get<K: Kv>(
    kv: &K,
    state: &MemcacheState,
    session: &Session,
    key: Bytes,
    flags: Flags,
    out: &mut BytesMut,
) -> Result<(), String> {
    let stored = stored_key(&key);
    let stats = &state.stats;
    Stats::bump(&stats.cmd_get);
    let lease = Lease::of(&flags)?;
    // A forwarded mg came here to be decided; others read first and are
    // decided only when what they found may hand out a win.
    let found = if session.forwarded {
        None
    } else {
        let value = match number::<i64>(&flags, b'T')? {
            Some(exptime) => {
                Stats::bump(&stats.cmd_touch);
                match touch(kv, stored.clone(), exptime).await {
                    // After the touch, for its new expiry and cas.
                    Ok(Some(_)) => read(kv, stored.clone()).await,
                    other => other,
                }
            }
            None => read(kv, stored.clone()).await,
        };
        let value = value.map_err(|e| server_error(&e))?;
        (!lease.needs_decision(value.as_ref(), kv.now_ms())).then(|| Decided::read(value))
    };
    let decided = match found {
        Some(decided) => decided,
        None => {
            let cmd = Command::Meta(MetaCommand::Get {
                key: key.clone(),
                flags: flags.clone(),
            });
            if !session.forwarded
                && let Some(reply) = forward::to_serialising_node(kv, &stored, &cmd).await
            {
                out.put_slice(&reply);
                return Ok(());
            }
            let mut decided = decide(kv, stored.clone(), lease)
                .await
                .map_err(|e| server_error(&e))?;
            if decided.cas_unknown && flags.has(b'c') {
                let back = read(kv, stored).await.map_err(|e| server_error(&e))?;
                if let (Some(v), Some(back)) = (&mut decided.value, back) {
                    v.cas = back.cas;
                }
            }
            decided
        }
    };
    let now = kv.now_ms();
    match decided.value {
        None => {
            Stats::bump(&stats.get_misses);
            if !flags.has(b'q') {
                line(out, "EN");
            }
        }
        Some(v) => {
            Stats::bump(&stats.get_hits);
            let got = Returned {
                win_sent: decided.win_sent,
                stale: v.meta.stale,
                won: decided.won,
                ..returned(&v, now)
            };
            let rf = return_flags(&key, &flags, &got);
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
    /// md I: the item stays, marked stale (HD, not a delete hit).
    Invalidated,
}

/// memcached's meta reply for a write outcome.
fn code(found: Found) -> &'static str {
    match found {
        Found::Done | Found::Invalidated => "HD",
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
    let chosen = number::<u64>(&flags, b'E')?;
    let invalidate = flags.has(b'I');
    let vivify = number::<i64>(&flags, b'N')?;
    let max_item = state.max_item;
    let stored = stored_key(&key);
    let found = if mode == b'S' && compare.is_none() {
        let change = with_chosen_cas(string_change(data, expiry, client_flags), chosen);
        kv.overwrite(stored, change)
            .await
            .map_err(|e| server_error(&e))?;
        Found::Done
    } else {
        kv.modify(stored, move |cur, now| {
            let cur = cur.filter(LiveValue::is_string);
            match (&cur, compare) {
                (None, Some(_)) => return (Change::Keep, Found::Missing),
                (Some(v), Some(c)) if meta_cas(v) != c => {
                    if invalidate && matches!(mode, b'S' | b'R') && c < meta_cas(v) {
                        return (stale_write(v, data, client_flags, chosen), Found::Done);
                    }
                    return (Change::Keep, Found::Exists);
                }
                _ => {}
            }
            let change = match (mode, cur) {
                (b'E', Some(_)) | (b'R', None) => return (Change::Keep, Found::NotStored),
                (b'A' | b'P', None) => match vivify {
                    // N: an append to a miss creates the item, N its TTL.
                    Some(ttl) => string_change(data, resolve_exptime(ttl, now), client_flags),
                    None => return (Change::Keep, Found::NotStored),
                },
                (b'A' | b'P', Some(v)) => match joined(&v, &data, mode == b'A', max_item) {
                    Some(change) => change,
                    None => return (Change::Keep, Found::TooLarge),
                },
                _ => string_change(data, expiry, client_flags),
            };
            (with_chosen_cas(change, chosen), Found::Done)
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

/// ms `I` with a cas older than the item's: memcached stores the value
/// but keeps it stale, with the item's TTL and whether a win went out.
fn stale_write(cur: &LiveValue, data: Bytes, flags: u32, chosen: Option<u64>) -> Change {
    Change::WriteItem {
        data,
        expires_at_ms: cur.expires_at_ms,
        flags,
        meta: ItemMeta {
            cas: chosen.map(ItemCas::Chosen),
            stale: true,
            win_sent: cur.meta.win_sent,
        },
    }
}

async fn delete<K: Kv>(
    kv: &K,
    state: &MemcacheState,
    key: Bytes,
    flags: Flags,
    out: &mut BytesMut,
) -> Result<(), String> {
    let compare = number::<u64>(&flags, b'C')?;
    let invalidate = flags.has(b'I');
    let ttl = number::<i64>(&flags, b'T')?;
    let chosen = number::<u64>(&flags, b'E')?;
    let found = kv
        .modify(stored_key(&key), move |cur, now| match (cur, compare) {
            (None, _) => (Change::Keep, Found::Missing),
            (Some(v), Some(c)) if meta_cas(&v) != c => (Change::Keep, Found::Exists),
            (Some(v), _) if invalidate => match v.is_string() {
                // I: kept, marked stale, with a new cas; the next mg wins.
                true => {
                    let change = Change::WriteItem {
                        expires_at_ms: ttl.map_or(v.expires_at_ms, |t| expires_at(t, now)),
                        data: v.data,
                        flags: v.flags,
                        meta: ItemMeta {
                            cas: chosen.map(ItemCas::Chosen),
                            stale: true,
                            win_sent: false,
                        },
                    };
                    (change, Found::Invalidated)
                }
                false => (Change::Keep, Found::Missing),
            },
            (Some(_), _) => (Change::Delete, Found::Done),
        })
        .await
        .map_err(|e| server_error(&e))?;
    let stats = &state.stats;
    match found {
        Found::Done => Stats::bump(&stats.delete_hits),
        Found::Invalidated => {}
        _ => Stats::bump(&stats.delete_misses),
    }
    let found = match found {
        Found::Invalidated => Found::Done,
        other => other,
    };
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
    let chosen = number::<u64>(&flags, b'E')?;
    let new_ttl = number::<i64>(&flags, b'T')?;
    let result = kv
        .modify(stored_key(&key), move |cur, now| {
            let Some(v) = cur else {
                // N: a miss creates the counter at J, with N as its exptime.
                return match vivify {
                    Some(ttl) => {
                        let expires = expires_at(ttl, now);
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
                        (with_chosen_cas(change, chosen), Ok((Found::Done, initial)))
                    }
                    None => (Change::Keep, Ok((Found::Missing, 0))),
                };
            };
            if compare.is_some_and(|c| c != meta_cas(&v)) {
                return (Change::Keep, Ok((Found::Exists, 0)));
            }
            let expires = new_ttl.map_or(v.expires_at_ms, |t| expires_at(t, now));
            match step_counter(&v, delta, incr, expires) {
                Ok((change, next)) => (with_chosen_cas(change, chosen), Ok((Found::Done, next))),
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
                meta_cas(&v),
                v.data.len()
            ),
        ),
    }
    Ok(())
}
