//! Set commands. A set is an add-wins observed-remove set (see
//! `core::crdt::DotMap`): an SADD concurrent with an SREM of the same
//! member keeps the member.
//!
//! Commands over several keys (SMOVE, SINTERSTORE, ...) read and write each
//! key on its own replicas: atomic only in the sense of each key's own
//! write (see the README's multi-key section).

use super::typed::{self, parse_count, pick, scan_page, set};
use super::{CmdResult, is, parse_i64, syntax_error};
use crate::core::crdt::{DotMap, TypeKind, TypedValue};
use crate::kv::Kv;
use crate::resp::reply::Reply;
use bytes::Bytes;
use std::collections::BTreeSet;

/// Runs a set command.
pub async fn run<K: Kv>(kv: &K, name: &str, args: &[Bytes]) -> CmdResult {
    let key = args[1].clone();
    match name {
        "sadd" => {
            let members = args[2..].to_vec();
            let added = typed::update(kv, key, TypeKind::Set, move |v| {
                let s = set(v)?;
                let mut added = 0;
                for m in members {
                    // Re-adding an existing member is a fresh add: it wins
                    // against a concurrent remove of the old one.
                    added += s.insert(m, ()) as i64;
                }
                Ok((true, added))
            })
            .await?;
            Ok(Reply::Int(added))
        }
        "srem" => {
            let members = args[2..].to_vec();
            let removed = typed::update(kv, key, TypeKind::Set, move |v| {
                let s = set(v)?;
                let n = members.iter().filter(|m| s.remove(m)).count() as i64;
                Ok((n > 0, n))
            })
            .await?;
            Ok(Reply::Int(removed))
        }
        "spop" => {
            let count = match args.get(2) {
                None => None,
                Some(c) => Some(parse_count(c)?),
            };
            if args.len() > 3 {
                return Err(syntax_error());
            }
            let popped = typed::update(kv, key, TypeKind::Set, move |v| {
                let s = set(v)?;
                let members: Vec<Bytes> = s.keys().cloned().collect();
                let chosen = pick(&members, count.unwrap_or(1));
                for m in &chosen {
                    s.remove(m);
                }
                Ok((!chosen.is_empty(), chosen))
            })
            .await?;
            Ok(match count {
                None => Reply::bulk_or_null(popped.into_iter().next()),
                Some(_) => Reply::Set(popped.into_iter().map(Reply::Bulk).collect()),
            })
        }
        "smove" => {
            let (dst, member) = (args[2].clone(), args[3].clone());
            // Check the destination's type first, as Redis does, so a
            // WRONGTYPE destination leaves the source untouched.
            typed::read(kv, dst.clone(), TypeKind::Set).await?;
            let m = member.clone();
            let moved = typed::update(kv, key, TypeKind::Set, move |v| {
                let removed = set(v)?.remove(&m);
                Ok((removed, removed))
            })
            .await?;
            if moved {
                typed::update(kv, dst, TypeKind::Set, move |v| {
                    set(v)?.insert(member, ());
                    Ok((true, ()))
                })
                .await?;
            }
            Ok(Reply::Int(moved as i64))
        }
        "sinter" | "sunion" | "sdiff" => {
            let result = combine(kv, name, &args[1..]).await?;
            Ok(Reply::Set(result.into_iter().map(Reply::Bulk).collect()))
        }
        "sinterstore" | "sunionstore" | "sdiffstore" => {
            let op = name.trim_end_matches("store");
            let result = combine(kv, op, &args[2..]).await?;
            let n = result.len() as i64;
            typed::replace(kv, key, TypeKind::Set, move |v| {
                let s = set(v)?;
                for m in result {
                    s.insert(m, ());
                }
                Ok(())
            })
            .await?;
            Ok(Reply::Int(n))
        }
        "sintercard" => {
            let numkeys = parse_i64(&args[1])?;
            let numkeys = usize::try_from(numkeys)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| Reply::err("numkeys should be greater than 0"))?;
            let keys = args
                .get(2..2 + numkeys)
                .ok_or_else(|| Reply::err("Number of keys can't be greater than number of args"))?;
            let mut limit = 0usize;
            let rest = &args[2 + numkeys..];
            match rest {
                [] => {}
                [opt, n] if is(opt, "LIMIT") => {
                    limit = parse_i64(n)
                        .ok()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| Reply::err("LIMIT can't be negative"))?;
                }
                _ => return Err(syntax_error()),
            }
            let result = combine(kv, "sinter", keys).await?;
            let n = if limit > 0 {
                result.len().min(limit)
            } else {
                result.len()
            };
            Ok(Reply::Int(n as i64))
        }
        _ => read_only(kv, name, key, args).await,
    }
}

async fn members_of<K: Kv>(kv: &K, key: Bytes) -> Result<Option<DotMap<()>>, Reply> {
    Ok(match typed::read(kv, key, TypeKind::Set).await? {
        Some(TypedValue::Set(s)) => Some(s),
        _ => None,
    })
}

/// SINTER/SUNION/SDIFF over `keys`.
async fn combine<K: Kv>(kv: &K, op: &str, keys: &[Bytes]) -> Result<BTreeSet<Bytes>, Reply> {
    let mut result: Option<BTreeSet<Bytes>> = None;
    for key in keys {
        let members: BTreeSet<Bytes> = members_of(kv, key.clone())
            .await?
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        result = Some(match result {
            None => members,
            Some(acc) => match op {
                "sinter" => acc.intersection(&members).cloned().collect(),
                "sunion" => acc.union(&members).cloned().collect(),
                _ => acc.difference(&members).cloned().collect(),
            },
        });
    }
    Ok(result.unwrap_or_default())
}

async fn read_only<K: Kv>(kv: &K, name: &str, key: Bytes, args: &[Bytes]) -> CmdResult {
    let s = members_of(kv, key).await?.unwrap_or_default();
    Ok(match name {
        "smembers" => Reply::Set(s.keys().cloned().map(Reply::Bulk).collect()),
        "sismember" => Reply::Int(s.contains(&args[2]) as i64),
        "smismember" => Reply::Array(
            args[2..]
                .iter()
                .map(|m| Reply::Int(s.contains(m) as i64))
                .collect(),
        ),
        "scard" => Reply::Int(s.len() as i64),
        "srandmember" => {
            let members: Vec<Bytes> = s.keys().cloned().collect();
            match args.get(2) {
                None => Reply::bulk_or_null(pick(&members, 1).into_iter().next()),
                Some(c) => {
                    if args.len() > 3 {
                        return Err(syntax_error());
                    }
                    let count = parse_i64(c)?;
                    if count >= 0 {
                        Reply::Array(
                            pick(&members, count as usize)
                                .into_iter()
                                .map(Reply::Bulk)
                                .collect(),
                        )
                    } else if members.is_empty() {
                        Reply::Array(Vec::new())
                    } else {
                        Reply::Array(
                            (0..count.unsigned_abs())
                                .map(|_| {
                                    Reply::Bulk(
                                        members[rand::random_range(0..members.len())].clone(),
                                    )
                                })
                                .collect(),
                        )
                    }
                }
            }
        }
        "sscan" => {
            let members: Vec<Bytes> = s.keys().cloned().collect();
            let (cursor, page) = scan_page(&members, &args[2..])?;
            Reply::Array(vec![
                Reply::bulk(cursor.to_string()),
                Reply::Array(page.into_iter().map(Reply::Bulk).collect()),
            ])
        }
        _ => return Err(Reply::err(format!("'{name}' is not a set command"))),
    })
}
