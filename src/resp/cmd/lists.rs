//! List commands. A list is a replicated sequence (see
//! `core::crdt::List`): pushes through different nodes all survive, in one
//! order on every replica; a pop removes what it observed.
//!
//! Pops and moves are conditional commands: they run at the key's first
//! healthy preference-list node (see `resp::forward`), so outside a
//! partition every element is popped once. During a partition both sides
//! may pop the same element (at-least-once delivery). The blocking forms
//! come here for one non-blocking try; `resp::blocking` waits between
//! tries.

use super::typed::{self, wrong_type};
use super::{CmdResult, is, parse_i64, syntax_error, wrong_arity};
use crate::core::crdt::{List, TypeKind, TypedValue};
use crate::kv::Kv;
use crate::resp::reply::Reply;
use crate::resp::session::ServerState;
use bytes::Bytes;
use std::collections::BTreeSet;

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

impl End {
    fn parse(arg: &[u8]) -> Result<End, Reply> {
        if is(arg, "LEFT") {
            Ok(End::Left)
        } else if is(arg, "RIGHT") {
            Ok(End::Right)
        } else {
            Err(syntax_error())
        }
    }

    fn pop(self, l: &mut List) -> Option<Bytes> {
        match self {
            End::Left => l.pop_front(),
            End::Right => l.pop_back(),
        }
    }

    fn push(self, l: &mut List, value: Bytes) -> usize {
        match self {
            End::Left => l.push_front(value),
            End::Right => l.push_back(value),
        }
    }
}

/// Runs a list command in database `db`.
pub async fn run<K: Kv>(
    kv: &K,
    server: &ServerState,
    db: u8,
    name: &str,
    args: &[Bytes],
) -> CmdResult {
    let key = args[1].clone();
    let pushed = |key: &Bytes| server.key_waiters.pushed(db, key);
    match name {
        "lpush" | "rpush" | "lpushx" | "rpushx" => {
            let end = if name.starts_with('l') {
                End::Left
            } else {
                End::Right
            };
            let only_existing = name.ends_with('x');
            let values = args[2..].to_vec();
            let len = typed::update(kv, key.clone(), TypeKind::List, move |v| {
                let l = list(v)?;
                if only_existing && l.is_empty() {
                    return Ok((false, 0));
                }
                let mut len = l.len();
                for value in values {
                    len = end.push(l, value);
                }
                Ok((true, len as i64))
            })
            .await?;
            if len > 0 {
                pushed(&key);
            }
            Ok(Reply::Int(len))
        }
        "lpop" | "rpop" => {
            if args.len() > 3 {
                return Err(wrong_arity(name));
            }
            let end = if name == "lpop" {
                End::Left
            } else {
                End::Right
            };
            let count = args.get(2).map(|c| parse_positive(c)).transpose()?;
            if count == Some(0) {
                return Ok(match read(kv, key).await? {
                    None => Reply::NullArray,
                    Some(_) => Reply::Array(Vec::new()),
                });
            }
            let popped = pop(kv, key, end, count.unwrap_or(1)).await?;
            Ok(match (count, popped) {
                (None, popped) => Reply::bulk_or_null(popped.and_then(|p| p.into_iter().next())),
                (Some(_), None) => Reply::NullArray,
                (Some(_), Some(popped)) => bulks(popped),
            })
        }
        "llen" => Ok(Reply::Int(
            read(kv, key).await?.map_or(0, |l| l.len()) as i64
        )),
        "lrange" => {
            let (start, stop) = (parse_i64(&args[2])?, parse_i64(&args[3])?);
            let Some(l) = read(kv, key).await? else {
                return Ok(Reply::Array(Vec::new()));
            };
            Ok(match range(l.len(), start, stop) {
                None => Reply::Array(Vec::new()),
                Some((from, to)) => bulks(l.values().skip(from).take(to - from + 1).collect()),
            })
        }
        "lindex" => {
            let index = parse_i64(&args[2])?;
            let Some(l) = read(kv, key).await? else {
                return Ok(Reply::Null);
            };
            Ok(Reply::bulk_or_null(
                absolute(l.len(), index).and_then(|i| l.get(i)),
            ))
        }
        "lset" => {
            let index = parse_i64(&args[2])?;
            let value = args[3].clone();
            typed::update(kv, key, TypeKind::List, move |v| {
                let l = list(v)?;
                if l.is_empty() {
                    return Err(Reply::err("no such key"));
                }
                match absolute(l.len(), index) {
                    Some(i) if l.set(i, value) => Ok((true, ())),
                    _ => Err(Reply::err("index out of range")),
                }
            })
            .await?;
            Ok(Reply::ok())
        }
        "linsert" => {
            let after = if is(&args[2], "AFTER") {
                true
            } else if is(&args[2], "BEFORE") {
                false
            } else {
                return Err(syntax_error());
            };
            let (pivot, value) = (args[3].clone(), args[4].clone());
            let len = typed::update(kv, key.clone(), TypeKind::List, move |v| {
                let l = list(v)?;
                if l.is_empty() {
                    return Ok((false, 0));
                }
                let Some(at) = l.values().position(|e| e == pivot) else {
                    return Ok((false, -1));
                };
                l.insert_at(at + after as usize, value);
                Ok((true, l.len() as i64))
            })
            .await?;
            if len > 0 {
                pushed(&key);
            }
            Ok(Reply::Int(len))
        }
        "lrem" => {
            let count = parse_i64(&args[2])?;
            let target = args[3].clone();
            let removed = typed::update(kv, key, TypeKind::List, move |v| {
                let l = list(v)?;
                let mut matches: Vec<usize> = l
                    .values()
                    .enumerate()
                    .filter(|(_, e)| *e == target)
                    .map(|(i, _)| i)
                    .collect();
                let limit = count.unsigned_abs() as usize;
                if count > 0 {
                    matches.truncate(limit);
                } else if count < 0 {
                    let skip = matches.len().saturating_sub(limit);
                    matches.drain(..skip);
                }
                let doomed: BTreeSet<usize> = matches.into_iter().collect();
                let n = l.remove_where(|i, _| doomed.contains(&i));
                Ok((n > 0, n as i64))
            })
            .await?;
            Ok(Reply::Int(removed))
        }
        "ltrim" => {
            let (start, stop) = (parse_i64(&args[2])?, parse_i64(&args[3])?);
            typed::update(kv, key, TypeKind::List, move |v| {
                let l = list(v)?;
                let keep = range(l.len(), start, stop);
                let n = l.remove_where(|i, _| keep.is_none_or(|(from, to)| i < from || i > to));
                Ok((n > 0, ()))
            })
            .await?;
            Ok(Reply::ok())
        }
        "lpos" => lpos(kv, key, args).await,
        "lmove" | "blmove" => {
            let (from, to) = (End::parse(&args[3])?, End::parse(&args[4])?);
            if name == "blmove" {
                super::parse_timeout(&args[5])?;
            }
            let moved = lmove(kv, key, args[2].clone(), from, to).await?;
            if moved.is_some() {
                pushed(&args[2]);
            }
            Ok(Reply::bulk_or_null(moved))
        }
        "rpoplpush" | "brpoplpush" => {
            if name == "brpoplpush" {
                super::parse_timeout(&args[3])?;
            }
            let moved = lmove(kv, key, args[2].clone(), End::Right, End::Left).await?;
            if moved.is_some() {
                pushed(&args[2]);
            }
            Ok(Reply::bulk_or_null(moved))
        }
        "lmpop" => lmpop(kv, &args[1..]).await,
        "blmpop" => {
            super::parse_timeout(&args[1])?;
            lmpop(kv, &args[2..]).await
        }
        "blpop" | "brpop" => {
            let last = args.len() - 1;
            super::parse_timeout(&args[last])?;
            let end = if name == "blpop" {
                End::Left
            } else {
                End::Right
            };
            for key in &args[1..last] {
                if let Some(popped) = pop(kv, key.clone(), end, 1).await? {
                    let value = popped.into_iter().next().unwrap_or_default();
                    return Ok(Reply::Array(vec![
                        Reply::Bulk(key.clone()),
                        Reply::Bulk(value),
                    ]));
                }
            }
            Ok(Reply::NullArray)
        }
        _ => Err(Reply::err("list command not wired")),
    }
}

/// The list inside `v` (callers asked for [`TypeKind::List`]).
fn list(v: &mut TypedValue) -> Result<&mut List, Reply> {
    match v {
        TypedValue::List(l) => Ok(l),
        _ => Err(wrong_type()),
    }
}

async fn read<K: Kv>(kv: &K, key: Bytes) -> Result<Option<List>, Reply> {
    Ok(match typed::read(kv, key, TypeKind::List).await? {
        Some(TypedValue::List(l)) => Some(l),
        _ => None,
    })
}

fn bulks(values: Vec<Bytes>) -> Reply {
    Reply::Array(values.into_iter().map(Reply::Bulk).collect())
}

/// Pops up to `count` elements from one end; `None` when the key is
/// absent (an empty list is absent).
async fn pop<K: Kv>(
    kv: &K,
    key: Bytes,
    end: End,
    count: usize,
) -> Result<Option<Vec<Bytes>>, Reply> {
    typed::update(kv, key, TypeKind::List, move |v| {
        let l = list(v)?;
        if l.is_empty() {
            return Ok((false, None));
        }
        let popped: Vec<Bytes> = (0..count).map_while(|_| end.pop(l)).collect();
        Ok((true, Some(popped)))
    })
    .await
}

/// LMOVE: pops from `src`'s `from` end and pushes onto `dst`'s `to` end.
/// Two keys are two writes: if the push fails the element is put back.
async fn lmove<K: Kv>(
    kv: &K,
    src: Bytes,
    dst: Bytes,
    from: End,
    to: End,
) -> Result<Option<Bytes>, Reply> {
    if src == dst {
        return typed::update(kv, src, TypeKind::List, move |v| {
            let l = list(v)?;
            let Some(value) = from.pop(l) else {
                return Ok((false, None));
            };
            to.push(l, value.clone());
            Ok((true, Some(value)))
        })
        .await;
    }
    // As in Redis: an absent source answers nil before the destination's
    // type is looked at; a WRONGTYPE destination leaves the source alone.
    if read(kv, src.clone()).await?.is_none() {
        return Ok(None);
    }
    read(kv, dst.clone()).await?;
    let Some(value) = pop(kv, src.clone(), from, 1)
        .await?
        .and_then(|p| p.into_iter().next())
    else {
        return Ok(None);
    };
    let pushed = value.clone();
    let stored = typed::update(kv, dst, TypeKind::List, move |v| {
        to.push(list(v)?, pushed);
        Ok((true, ()))
    })
    .await;
    if let Err(e) = stored {
        let back = value.clone();
        // Best effort: the element goes back where it came from.
        let _ = typed::update(kv, src, TypeKind::List, move |v| {
            from.push(list(v)?, back);
            Ok((true, ()))
        })
        .await;
        return Err(e);
    }
    Ok(Some(value))
}

/// LMPOP's arguments after the command name: `numkeys key [key ...]
/// LEFT|RIGHT [COUNT n]`.
async fn lmpop<K: Kv>(kv: &K, args: &[Bytes]) -> CmdResult {
    let numkeys = parse_i64(&args[0])?;
    if numkeys <= 0 {
        return Err(Reply::err("numkeys should be greater than 0"));
    }
    let numkeys = numkeys as usize;
    if numkeys >= args.len() {
        return Err(syntax_error());
    }
    let keys = &args[1..1 + numkeys];
    let rest = &args[1 + numkeys..];
    let Some(end) = rest.first() else {
        return Err(syntax_error());
    };
    let end = End::parse(end)?;
    let count = match &rest[1..] {
        [] => 1,
        [word, n] if is(word, "COUNT") => {
            let n = parse_i64(n).map_err(|_| Reply::err("count should be greater than 0"))?;
            if n <= 0 {
                return Err(Reply::err("count should be greater than 0"));
            }
            n as usize
        }
        _ => return Err(syntax_error()),
    };
    for key in keys {
        if let Some(popped) = pop(kv, key.clone(), end, count).await? {
            return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), bulks(popped)]));
        }
    }
    Ok(Reply::NullArray)
}

/// LPOS key element [RANK rank] [COUNT n] [MAXLEN len].
async fn lpos<K: Kv>(kv: &K, key: Bytes, args: &[Bytes]) -> CmdResult {
    let target = &args[2];
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < args.len() {
        let value = args.get(i + 1).ok_or_else(syntax_error)?;
        if is(&args[i], "RANK") {
            rank = parse_i64(value)?;
            if rank == 0 {
                return Err(Reply::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
            if rank == i64::MIN {
                return Err(Reply::err("value is out of range"));
            }
        } else if is(&args[i], "COUNT") {
            let n = parse_i64(value).map_err(|_| Reply::err("COUNT can't be negative"))?;
            count = Some(usize::try_from(n).map_err(|_| Reply::err("COUNT can't be negative"))?);
        } else if is(&args[i], "MAXLEN") {
            let n = parse_i64(value).map_err(|_| Reply::err("MAXLEN can't be negative"))?;
            maxlen = usize::try_from(n).map_err(|_| Reply::err("MAXLEN can't be negative"))?;
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    let Some(l) = read(kv, key).await? else {
        return Ok(match count {
            Some(_) => Reply::Array(Vec::new()),
            None => Reply::Null,
        });
    };
    let len = l.len();
    let values: Vec<Bytes> = l.values().collect();
    let order: Box<dyn Iterator<Item = usize>> = if rank > 0 {
        Box::new(0..len)
    } else {
        Box::new((0..len).rev())
    };
    let scanned = if maxlen == 0 { len } else { maxlen.min(len) };
    let wanted = match count {
        Some(0) => usize::MAX,
        Some(n) => n,
        None => 1,
    };
    let found: Vec<usize> = order
        .take(scanned)
        .filter(|&i| values[i] == *target)
        .skip(rank.unsigned_abs() as usize - 1)
        .take(wanted)
        .collect();
    Ok(match count {
        Some(_) => Reply::Array(found.into_iter().map(|i| Reply::Int(i as i64)).collect()),
        None => found.first().map_or(Reply::Null, |&i| Reply::Int(i as i64)),
    })
}

/// A count argument Redis reads as a positive long.
fn parse_positive(arg: &[u8]) -> Result<usize, Reply> {
    let out_of_range = || Reply::err("value is out of range, must be positive");
    let n = parse_i64(arg).map_err(|_| out_of_range())?;
    usize::try_from(n).map_err(|_| out_of_range())
}

/// An index from the head, negative ones counting from the tail.
fn absolute(len: usize, index: i64) -> Option<usize> {
    let i = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// LRANGE/LTRIM's `start stop`, clamped: the inclusive index range, or
/// `None` when it is empty.
fn range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}
