//! Hash commands. A hash is an add-wins map of fields (see
//! `core::crdt::DotMap`): concurrent HSETs of different fields all
//! survive, concurrent HSETs of one field show the latest on every node,
//! and HDEL removes only the writes it observed.
//!
//! HINCRBY/HINCRBYFLOAT read-modify-write the field: two increments of one
//! field through different nodes at the same moment keep one of them (the
//! top-level counters of INCRBY sum; hash field counters do not yet).

use super::typed::{self, field_value, hash, pick, scan_page};
use super::{CmdResult, is, parse_f64, parse_i64, syntax_error, wrong_arity};
use crate::core::crdt::{DotMap, HashField, TypeKind, TypedValue};
use crate::kv::Kv;
use crate::resp::reply::{Reply, format_double};
use bytes::Bytes;

/// Runs a hash command.
pub async fn run<K: Kv>(kv: &K, name: &str, args: &[Bytes]) -> CmdResult {
    let key = args[1].clone();
    match name {
        "hset" | "hmset" => {
            if !args.len().is_multiple_of(2) {
                return Err(wrong_arity(name));
            }
            let pairs: Vec<(Bytes, Bytes)> = args[2..]
                .chunks_exact(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            let added = typed::update(kv, key, TypeKind::Hash, move |v| {
                let h = hash(v)?;
                let mut added = 0;
                for (field, value) in pairs {
                    added += h.insert(field, HashField::new(value)) as i64;
                }
                Ok((true, added))
            })
            .await?;
            Ok(if name == "hmset" {
                Reply::ok()
            } else {
                Reply::Int(added)
            })
        }
        "hsetnx" => {
            let (field, value) = (args[2].clone(), args[3].clone());
            let set = typed::update(kv, key, TypeKind::Hash, move |v| {
                let h = hash(v)?;
                if h.contains(&field) {
                    return Ok((false, 0));
                }
                h.insert(field, HashField::new(value));
                Ok((true, 1))
            })
            .await?;
            Ok(Reply::Int(set))
        }
        "hdel" => {
            let fields = args[2..].to_vec();
            let removed = typed::update(kv, key, TypeKind::Hash, move |v| {
                let h = hash(v)?;
                let n = fields.iter().filter(|f| h.remove(f)).count() as i64;
                Ok((n > 0, n))
            })
            .await?;
            Ok(Reply::Int(removed))
        }
        "hincrby" => {
            let by = parse_i64(&args[3])?;
            let field = args[2].clone();
            let next = typed::update(kv, key, TypeKind::Hash, move |v| {
                let h = hash(v)?;
                let current = match field_value(h, &field) {
                    Some(text) => {
                        parse_i64(&text).map_err(|_| Reply::err("hash value is not an integer"))?
                    }
                    None => 0,
                };
                let next = current
                    .checked_add(by)
                    .ok_or_else(|| Reply::err("increment or decrement would overflow"))?;
                h.insert(field, HashField::new(Bytes::from(next.to_string())));
                Ok((true, next))
            })
            .await?;
            Ok(Reply::Int(next))
        }
        "hincrbyfloat" => {
            let by = parse_f64(&args[3])?;
            let field = args[2].clone();
            let next = typed::update(kv, key, TypeKind::Hash, move |v| {
                let h = hash(v)?;
                let current = match field_value(h, &field) {
                    Some(text) => {
                        parse_f64(&text).map_err(|_| Reply::err("hash value is not a float"))?
                    }
                    None => 0.0,
                };
                let next = current + by;
                if !next.is_finite() {
                    return Err(Reply::err("increment would produce NaN or Infinity"));
                }
                let text = format_double(next);
                h.insert(field, HashField::new(Bytes::from(text.clone())));
                Ok((true, text))
            })
            .await?;
            Ok(Reply::bulk(next))
        }
        _ => read_only(kv, name, key, args).await,
    }
}

async fn read_only<K: Kv>(kv: &K, name: &str, key: Bytes, args: &[Bytes]) -> CmdResult {
    let found = typed::read(kv, key, TypeKind::Hash).await?;
    let empty = DotMap::new();
    let h = match &found {
        Some(TypedValue::Hash(h)) => h,
        _ => &empty,
    };
    Ok(match name {
        "hget" => Reply::bulk_or_null(field_value(h, &args[2])),
        "hmget" => Reply::Array(
            args[2..]
                .iter()
                .map(|f| Reply::bulk_or_null(field_value(h, f)))
                .collect(),
        ),
        "hexists" => Reply::Int(h.contains(&args[2]) as i64),
        "hlen" => Reply::Int(h.len() as i64),
        "hstrlen" => Reply::Int(field_value(h, &args[2]).map_or(0, |v| v.len() as i64)),
        "hkeys" => Reply::Array(h.keys().cloned().map(Reply::Bulk).collect()),
        "hvals" => Reply::Array(
            h.keys()
                .filter_map(|f| field_value(h, f))
                .map(Reply::Bulk)
                .collect(),
        ),
        "hgetall" => Reply::Map(
            h.keys()
                .filter_map(|f| field_value(h, f).map(|v| (Reply::Bulk(f.clone()), Reply::Bulk(v))))
                .collect(),
        ),
        "hrandfield" => hrandfield(h, &args[2..])?,
        "hscan" => {
            let fields: Vec<Bytes> = h.keys().cloned().collect();
            let (cursor, page) = scan_page(&fields, &args[2..])?;
            let mut out = Vec::with_capacity(page.len() * 2);
            for f in page {
                if let Some(v) = field_value(h, &f) {
                    out.push(Reply::Bulk(f));
                    out.push(Reply::Bulk(v));
                }
            }
            Reply::Array(vec![Reply::bulk(cursor.to_string()), Reply::Array(out)])
        }
        _ => return Err(Reply::err(format!("'{name}' is not a hash command"))),
    })
}

/// HRANDFIELD key [count [WITHVALUES]].
fn hrandfield(h: &DotMap<HashField>, opts: &[Bytes]) -> CmdResult {
    let fields: Vec<&Bytes> = h.keys().collect();
    let Some(count_arg) = opts.first() else {
        return Ok(Reply::bulk_or_null(
            pick(&fields, 1).first().map(|f| (*f).clone()),
        ));
    };
    let with_values = match opts.get(1) {
        None => false,
        Some(o) if is(o, "WITHVALUES") && opts.len() == 2 => true,
        Some(_) => return Err(syntax_error()),
    };
    let count = parse_i64(count_arg)?;
    let chosen: Vec<&Bytes> = if count >= 0 {
        pick(&fields, count as usize)
    } else if fields.is_empty() {
        Vec::new()
    } else {
        (0..count.unsigned_abs())
            .map(|_| fields[rand::random_range(0..fields.len())])
            .collect()
    };
    let mut out = Vec::new();
    for f in chosen {
        out.push(Reply::Bulk(f.clone()));
        if with_values {
            out.push(Reply::bulk_or_null(field_value(h, f)));
        }
    }
    Ok(Reply::Array(out))
}
