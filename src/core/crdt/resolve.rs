//! What a key holds once its concurrent siblings are taken together.
//!
//! The rule for a key written concurrently with different types: the type
//! of the latest write wins (the sibling GET would pick: latest timestamp,
//! then dot), and every concurrent sibling of that same type is joined
//! into it. Siblings of other types are ignored until a write supersedes
//! them. A deleted collection is stored as an empty one that remembers
//! what it removed, so a concurrent add still survives (add-wins); an
//! empty collection reads as an absent key, as in Redis.

use super::typed::TypedValue;
use crate::core::item_meta::ItemMeta;
use crate::core::object::{Object, Payload};
use bytes::Bytes;

/// A key's readable value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A plain string (the winning sibling).
    Str {
        /// The bytes.
        data: Bytes,
        /// Absolute expiry in ms.
        expires_at_ms: Option<u64>,
        /// memcached client flags (0 when a Redis command wrote it).
        flags: u32,
        /// memcached meta state (default when none was stored).
        meta: ItemMeta,
    },
    /// A data type, joined over its concurrent siblings.
    Typed {
        /// The joined state.
        value: TypedValue,
        /// The winning sibling's expiry.
        expires_at_ms: Option<u64>,
    },
}

/// `obj`'s value at `now_ms`, or `None` when it is absent, deleted or
/// expired.
pub fn resolve(obj: &Object, now_ms: u64) -> Option<Resolved> {
    let winner = obj.winner()?;
    if !winner.payload.is_live(now_ms) {
        return None;
    }
    match &winner.payload {
        Payload::Value {
            data,
            expires_at_ms,
        } => Some(Resolved::Str {
            data: data.clone(),
            expires_at_ms: *expires_at_ms,
            flags: 0,
            meta: ItemMeta::default(),
        }),
        Payload::Flagged {
            data,
            expires_at_ms,
            flags,
        } => Some(Resolved::Str {
            data: data.clone(),
            expires_at_ms: *expires_at_ms,
            flags: *flags,
            meta: ItemMeta::default(),
        }),
        Payload::Item {
            data,
            expires_at_ms,
            flags,
            meta,
        } => Some(Resolved::Str {
            data: data.clone(),
            expires_at_ms: *expires_at_ms,
            flags: *flags,
            meta: *meta,
        }),
        Payload::Typed {
            value,
            expires_at_ms,
        } => {
            let mut joined = value.clone();
            for s in &obj.siblings {
                if s.dot == winner.dot || !s.payload.is_live(now_ms) {
                    continue;
                }
                if let Payload::Typed { value: other, .. } = &s.payload
                    && other.kind() == value.kind()
                {
                    joined.merge(other);
                }
            }
            (!joined.is_empty_collection()).then_some(Resolved::Typed {
                value: joined,
                expires_at_ms: *expires_at_ms,
            })
        }
        Payload::Tombstone => None,
    }
}
