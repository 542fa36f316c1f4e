//! Keyspace commands: DEL, EXISTS, TOUCH, TYPE, the EXPIRE family, TTL,
//! EXPIRETIME, PERSIST, SCAN, KEYS, RANDOMKEY (RENAME and OBJECT have files
//! of their own).
//!
//! DEL writes versioned tombstones (never a local delete), so a deletion
//! travels through replication and repair like any other write.

use super::strings::read;
use super::{CmdResult, is, kv_error, parse_i64, syntax_error};
use crate::core::crdt::TypedValue;
use crate::kv::{Change, Kv, LiveValue};
use crate::resp::glob::glob_match;
use crate::resp::reply::Reply;
use bytes::Bytes;

/// Most keys SCAN examines per call when COUNT is not given (Redis: 10).
const DEFAULT_SCAN_COUNT: usize = 10;

/// Which of `keys` hold a live value (for DEL's keyspace notifications,
/// whose reply only counts them). A key that cannot be read counts as
/// absent: the notification is best effort, the DEL itself still runs.
pub async fn existing<K: Kv>(kv: &K, keys: &[Bytes]) -> Vec<bool> {
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        found.push(matches!(read(kv, key.clone()).await, Ok(Some(_))));
    }
    found
}

/// Runs a keyspace command.
pub async fn run<K: Kv>(kv: &K, name: &str, args: &[Bytes]) -> CmdResult {
    match name {
        "del" | "unlink" => {
            let mut deleted = 0;
            for key in &args[1..] {
                let existed = kv
                    .modify(key.clone(), |cur, _| match cur {
                        Some(v) => (deletion(&v), true),
                        None => (Change::Keep, false),
                    })
                    .await
                    .map_err(kv_error)?;
                deleted += existed as i64;
            }
            Ok(Reply::Int(deleted))
        }
        "rename" | "renamenx" => super::rename::rename(kv, name, args).await,
        "object" => super::object::run(kv, args).await,
        "expiretime" | "pexpiretime" => {
            let Some(value) = read(kv, args[1].clone()).await? else {
                return Ok(Reply::Int(-2));
            };
            let Some(at) = value.expires_at_ms else {
                return Ok(Reply::Int(-1));
            };
            Ok(Reply::Int(
                if name == "expiretime" { at / 1000 } else { at } as i64,
            ))
        }
        "exists" | "touch" => {
            let mut found = 0;
            for key in &args[1..] {
                found += read(kv, key.clone()).await?.is_some() as i64;
            }
            Ok(Reply::Int(found))
        }
        "type" => Ok(Reply::Simple(
            match read(kv, args[1].clone()).await? {
                Some(v) => v.type_name(),
                None => "none",
            }
            .into(),
        )),
        "expire" | "pexpire" | "expireat" | "pexpireat" => expire(kv, name, args).await,
        "ttl" | "pttl" => {
            let Some(value) = read(kv, args[1].clone()).await? else {
                return Ok(Reply::Int(-2));
            };
            let Some(at) = value.expires_at_ms else {
                return Ok(Reply::Int(-1));
            };
            let left = at.saturating_sub(kv.now_ms()) as i64;
            Ok(Reply::Int(if name == "ttl" {
                (left + 500) / 1000
            } else {
                left
            }))
        }
        "persist" => {
            let changed = kv
                .modify(args[1].clone(), |cur, _| match cur {
                    Some(v) if v.expires_at_ms.is_some() => (v.with_expiry(None), 1),
                    _ => (Change::Keep, 0),
                })
                .await
                .map_err(kv_error)?;
            Ok(Reply::Int(changed))
        }
        "scan" => scan(kv, args).await,
        "keys" => {
            let pattern = &args[1];
            let mut cursor = 0;
            let mut out = Vec::new();
            loop {
                let page = kv.scan(cursor, 1_000).await.map_err(kv_error)?;
                out.extend(
                    page.keys
                        .into_iter()
                        .filter(|k| glob_match(pattern, k))
                        .map(Reply::Bulk),
                );
                if page.next_cursor == 0 {
                    break;
                }
                cursor = page.next_cursor;
            }
            Ok(Reply::Array(out))
        }
        "randomkey" => {
            // Start at a random point of the ring and take the first live key,
            // wrapping around once.
            let start: u64 = rand::random();
            for cursor in [start, 0] {
                let mut cursor = cursor;
                loop {
                    let page = kv.scan(cursor, 100).await.map_err(kv_error)?;
                    if let Some(key) = page.keys.into_iter().next() {
                        return Ok(Reply::Bulk(key));
                    }
                    if page.next_cursor == 0 {
                        break;
                    }
                    cursor = page.next_cursor;
                }
            }
            Ok(Reply::Null)
        }
        _ => Err(Reply::err(format!("'{name}' is not a keyspace command"))),
    }
}

/// How DEL removes `v`: a string or counter gets a tombstone; a
/// collection is replaced by an empty one that remembers what it removed,
/// so an element added concurrently elsewhere survives (add-wins).
pub fn deletion(v: &LiveValue) -> Change {
    match v.kind() {
        Some(kind) if !v.is_string() => Change::WriteTyped {
            value: TypedValue::empty(kind),
            expires_at_ms: None,
        },
        _ => Change::Delete,
    }
}

async fn expire<K: Kv>(kv: &K, name: &str, args: &[Bytes]) -> CmdResult {
    let invalid = || Reply::err(format!("invalid expire time in '{name}' command"));
    let amount = parse_i64(&args[2])?;
    let now = kv.now_ms() as i64;
    let deadline = match name {
        "expire" => amount.checked_mul(1000).and_then(|ms| ms.checked_add(now)),
        "pexpire" => amount.checked_add(now),
        "expireat" => amount.checked_mul(1000),
        _ => Some(amount),
    }
    .ok_or_else(invalid)?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        if is(opt, "NX") {
            nx = true;
        } else if is(opt, "XX") {
            xx = true;
        } else if is(opt, "GT") {
            gt = true;
        } else if is(opt, "LT") {
            lt = true;
        } else {
            return Err(Reply::err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Reply::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let changed = kv
        .modify(args[1].clone(), move |cur, now| {
            let Some(v) = cur else {
                return (Change::Keep, 0);
            };
            let current = v.expires_at_ms.map(|t| t as i64);
            let allowed = match current {
                None => !xx && !gt,
                Some(cur_at) => !nx && (!gt || deadline > cur_at) && (!lt || deadline < cur_at),
            };
            if !allowed {
                return (Change::Keep, 0);
            }
            if deadline <= now as i64 {
                return (deletion(&v), 1);
            }
            (v.with_expiry(Some(deadline as u64)), 1)
        })
        .await
        .map_err(kv_error)?;
    Ok(Reply::Int(changed))
}

async fn scan<K: Kv>(kv: &K, args: &[Bytes]) -> CmdResult {
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("invalid cursor"))?;
    let mut pattern: Option<Bytes> = None;
    let mut count = DEFAULT_SCAN_COUNT;
    let mut type_filter: Option<Bytes> = None;
    let mut i = 2;
    while i < args.len() {
        let value = args.get(i + 1).ok_or_else(syntax_error)?;
        if is(&args[i], "MATCH") {
            pattern = Some(value.clone());
        } else if is(&args[i], "COUNT") {
            count = usize::try_from(parse_i64(value)?)
                .ok()
                .filter(|&c| c >= 1)
                .ok_or_else(syntax_error)?;
        } else if is(&args[i], "TYPE") {
            type_filter = Some(value.clone());
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    let page = kv.scan(cursor, count).await.map_err(kv_error)?;
    let mut keys = Vec::new();
    for key in page.keys {
        if pattern.as_ref().is_some_and(|p| !glob_match(p, &key)) {
            continue;
        }
        if let Some(wanted) = &type_filter {
            let found = read(kv, key.clone()).await?;
            if found.is_none_or(|v| !is(wanted, v.type_name())) {
                continue;
            }
        }
        keys.push(Reply::Bulk(key));
    }
    Ok(Reply::Array(vec![
        Reply::bulk(page.next_cursor.to_string()),
        Reply::Array(keys),
    ]))
}
