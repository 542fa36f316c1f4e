//! What the hash, set and sorted-set commands share: reading a key as one
//! type (WRONGTYPE otherwise) and read-modify-writing its state.
//!
//! A write builds the new state on the joined state the coordinator read
//! and supersedes every sibling it read; concurrent writes elsewhere stay
//! siblings and are joined on the next read (see `core::crdt`).

use super::{is, kv_error, syntax_error};
use crate::core::crdt::{DotMap, HashField, TypeKind, TypedValue, ZSet};
use crate::kv::{Change, Kv};
use crate::resp::glob::glob_match;
use crate::resp::reply::Reply;
use bytes::Bytes;

/// Redis's reply to a command on a key of another type.
pub fn wrong_type() -> Reply {
    Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
}

/// The key's state if it holds `kind`; `None` if absent; WRONGTYPE if it
/// holds something else.
pub async fn read<K: Kv>(kv: &K, key: Bytes, kind: TypeKind) -> Result<Option<TypedValue>, Reply> {
    match super::strings::read(kv, key).await? {
        None => Ok(None),
        Some(v) => match v.typed {
            Some(t) if t.kind() == kind => Ok(Some(t)),
            _ => Err(wrong_type()),
        },
    }
}

/// Read-modify-write of the key as `kind` (an empty one if absent). `f`
/// returns whether it changed anything and the reply; an error reply
/// writes nothing.
pub async fn update<K, T, F>(kv: &K, key: Bytes, kind: TypeKind, f: F) -> Result<T, Reply>
where
    K: Kv,
    T: Send + 'static,
    F: FnOnce(&mut TypedValue) -> Result<(bool, T), Reply> + Send + 'static,
{
    kv.modify(key, move |cur, _| {
        let (mut value, expires_at_ms) = match cur {
            None => (TypedValue::empty(kind), None),
            Some(v) => match v.typed {
                Some(t) if t.kind() == kind => (t, v.expires_at_ms),
                _ => return (Change::Keep, Err(wrong_type())),
            },
        };
        match f(&mut value) {
            Ok((true, reply)) => (
                Change::WriteTyped {
                    value,
                    expires_at_ms,
                },
                Ok(reply),
            ),
            Ok((false, reply)) => (Change::Keep, Ok(reply)),
            Err(e) => (Change::Keep, Err(e)),
        }
    })
    .await
    .map_err(kv_error)?
}

/// Replaces whatever the key holds with a new value of `kind` that `fill`
/// populates (the *STORE commands); an empty result deletes the key.
/// Builds on the old state when it has the same type, so the elements it
/// drops count as observed removes.
pub async fn replace<K, F>(kv: &K, key: Bytes, kind: TypeKind, fill: F) -> Result<(), Reply>
where
    K: Kv,
    F: FnOnce(&mut TypedValue) -> Result<(), Reply> + Send + 'static,
{
    kv.modify(key, move |cur, _| {
        let mut value = match cur.and_then(|v| v.typed) {
            Some(mut t) if t.kind() == kind => {
                t.clear();
                t
            }
            _ => TypedValue::empty(kind),
        };
        match fill(&mut value) {
            Ok(()) => (
                Change::WriteTyped {
                    value,
                    expires_at_ms: None,
                },
                Ok(()),
            ),
            Err(e) => (Change::Keep, Err(e)),
        }
    })
    .await
    .map_err(kv_error)?
}

/// The hash inside `v` (callers asked for [`TypeKind::Hash`]).
pub fn hash(v: &mut TypedValue) -> Result<&mut DotMap<HashField>, Reply> {
    match v {
        TypedValue::Hash(h) => Ok(h),
        _ => Err(wrong_type()),
    }
}

/// The set inside `v`.
pub fn set(v: &mut TypedValue) -> Result<&mut DotMap<()>, Reply> {
    match v {
        TypedValue::Set(s) => Ok(s),
        _ => Err(wrong_type()),
    }
}

/// The sorted set inside `v`.
pub fn zset(v: &mut TypedValue) -> Result<&mut ZSet, Reply> {
    match v {
        TypedValue::ZSet(z) => Ok(z),
        _ => Err(wrong_type()),
    }
}

/// A hash field's current value: the latest of its concurrent writes.
pub fn field_value(h: &DotMap<HashField>, field: &[u8]) -> Option<Bytes> {
    h.get(field)
        .and_then(|tags| HashField::latest(tags).cloned())
}

/// Parses a COUNT-style argument: a non-negative integer.
pub fn parse_count(arg: &[u8]) -> Result<usize, Reply> {
    let n = super::parse_i64(arg)?;
    usize::try_from(n).map_err(|_| Reply::err("value is out of range, must be positive"))
}

/// Up to `count` distinct items chosen at random.
pub fn pick<T: Clone>(items: &[T], count: usize) -> Vec<T> {
    let mut idx: Vec<usize> = (0..items.len()).collect();
    let n = count.min(items.len());
    for i in 0..n {
        let j = rand::random_range(i..idx.len());
        idx.swap(i, j);
    }
    idx[..n].iter().map(|&i| items[i].clone()).collect()
}

/// One page of HSCAN/SSCAN/ZSCAN over `items` (in element order):
/// `cursor [MATCH pattern] [COUNT n]`; the cursor is an index.
pub fn scan_page(items: &[Bytes], args: &[Bytes]) -> Result<(usize, Vec<Bytes>), Reply> {
    let cursor: usize = std::str::from_utf8(&args[0])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Reply::err("invalid cursor"))?;
    let mut pattern = None;
    let mut count = 10usize;
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).ok_or_else(syntax_error)?;
        if is(&args[i], "MATCH") {
            pattern = Some(value.clone());
        } else if is(&args[i], "COUNT") {
            count = parse_count(value)?;
            if count == 0 {
                return Err(syntax_error());
            }
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    let start = cursor.min(items.len());
    let end = start.saturating_add(count).min(items.len());
    let next = if end >= items.len() { 0 } else { end };
    let page = items[start..end]
        .iter()
        .filter(|m| pattern.as_ref().is_none_or(|p| glob_match(p, m)))
        .cloned()
        .collect();
    Ok((next, page))
}
