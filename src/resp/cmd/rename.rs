//! RENAME and RENAMENX, and the copy of a key's value to another key that
//! they share with COPY and MOVE.
//!
//! The two keys of a rename generally live on different replicas, so a
//! rename is two writes: the copy first, then the deletion of the source
//! (a failure in between leaves both keys, never neither). A data type is
//! copied as fresh writes of the destination key, not with the source's
//! version tags, which belong to the source key's history alone.

use super::keys::deletion;
use super::strings::read;
use super::{CmdResult, kv_error};
use crate::core::crdt::TypedValue;
use crate::kv::{Change, Kv, LiveValue};
use crate::resp::reply::Reply;
use bytes::Bytes;

/// Writes `value` at `dst`, replacing what is there unless `only_if_absent`;
/// true when it wrote.
pub async fn write_copy<K: Kv>(
    kv: &K,
    dst: Bytes,
    value: LiveValue,
    only_if_absent: bool,
) -> Result<bool, Reply> {
    kv.modify(dst, move |cur, _| {
        if only_if_absent && cur.is_some() {
            return (Change::Keep, false);
        }
        let change = match &value.typed {
            None => Change::Write {
                data: value.data.clone(),
                expires_at_ms: value.expires_at_ms,
                flags: value.flags,
            },
            Some(src) => {
                let mut fresh = match cur.and_then(|c| c.typed) {
                    // Building on the old state makes its elements observed
                    // removes instead of concurrent survivors.
                    Some(mut old) if old.kind() == src.kind() => {
                        old.clear();
                        old
                    }
                    _ => TypedValue::empty(src.kind()),
                };
                src.copy_contents_into(&mut fresh);
                Change::WriteTyped {
                    value: fresh,
                    expires_at_ms: value.expires_at_ms,
                }
            }
        };
        (change, true)
    })
    .await
    .map_err(kv_error)
}

/// Deletes `key` if it still holds a live value.
pub async fn remove<K: Kv>(kv: &K, key: Bytes) -> Result<(), Reply> {
    kv.modify(key, |cur, _| match cur {
        Some(v) => (deletion(&v), ()),
        None => (Change::Keep, ()),
    })
    .await
    .map_err(kv_error)
}

/// RENAME / RENAMENX.
pub async fn rename<K: Kv>(kv: &K, name: &str, args: &[Bytes]) -> CmdResult {
    let (src, dst) = (args[1].clone(), args[2].clone());
    let nx = name == "renamenx";
    let Some(value) = read(kv, src.clone()).await? else {
        return Err(Reply::err("no such key"));
    };
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::ok() });
    }
    if !write_copy(kv, dst, value, nx).await? {
        return Ok(Reply::Int(0));
    }
    remove(kv, src).await?;
    Ok(if nx { Reply::Int(1) } else { Reply::ok() })
}
