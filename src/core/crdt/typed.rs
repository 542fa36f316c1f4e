//! The value of a sibling that holds a Redis data type.

use super::Authority;
use super::counter::Counter;
use super::dotmap::{DotMap, TagValue};
use super::list::List;
use super::zset::ZSet;
use crate::core::version::{Dot, VersionVector};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A hash field's value; concurrent writes of one field keep every tag and
/// readers pick the latest (`timestamp_ms`, then dot), so every replica
/// shows the same winner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashField {
    /// Coordinator time of the write (0 until stamped).
    pub timestamp_ms: u64,
    /// The field's bytes.
    pub value: Bytes,
}

impl HashField {
    /// The value readers see among one field's concurrent writes: the
    /// latest (`timestamp_ms`, then dot), the same on every replica.
    pub fn latest(tags: &std::collections::BTreeMap<Dot, HashField>) -> Option<&Bytes> {
        tags.iter()
            .max_by(|a, b| (a.1.timestamp_ms, a.0).cmp(&(b.1.timestamp_ms, b.0)))
            .map(|(_, f)| &f.value)
    }

    /// A field value to be written.
    pub fn new(value: Bytes) -> Self {
        HashField {
            timestamp_ms: 0,
            value,
        }
    }
}

impl TagValue for HashField {
    fn stamp(&mut self, now_ms: u64) {
        self.timestamp_ms = now_ms;
    }
}

/// Which Redis type a value is (the TYPE reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeKind {
    /// A counter (TYPE says `string`).
    Counter,
    /// A hash.
    Hash,
    /// A set.
    Set,
    /// A sorted set.
    ZSet,
    /// A list.
    List,
}

impl TypeKind {
    /// The name TYPE and SCAN TYPE use.
    pub fn redis_name(self) -> &'static str {
        match self {
            TypeKind::Counter => "string",
            TypeKind::Hash => "hash",
            TypeKind::Set => "set",
            TypeKind::ZSet => "zset",
            TypeKind::List => "list",
        }
    }
}

/// A replicated data type held by one sibling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TypedValue {
    /// INCR and friends.
    Counter(Counter),
    /// HSET and friends.
    Hash(DotMap<HashField>),
    /// SADD and friends.
    Set(DotMap<()>),
    /// ZADD and friends.
    ZSet(ZSet),
    /// LPUSH and friends (last, so records written before lists existed
    /// still decode).
    List(List),
}

impl TypedValue {
    /// Its type.
    pub fn kind(&self) -> TypeKind {
        match self {
            TypedValue::Counter(_) => TypeKind::Counter,
            TypedValue::Hash(_) => TypeKind::Hash,
            TypedValue::Set(_) => TypeKind::Set,
            TypedValue::ZSet(_) => TypeKind::ZSet,
            TypedValue::List(_) => TypeKind::List,
        }
    }

    /// An empty value of `kind`.
    pub fn empty(kind: TypeKind) -> Self {
        match kind {
            TypeKind::Counter => TypedValue::Counter(Counter::new()),
            TypeKind::Hash => TypedValue::Hash(DotMap::new()),
            TypeKind::Set => TypedValue::Set(DotMap::new()),
            TypeKind::ZSet => TypedValue::ZSet(ZSet::new()),
            TypeKind::List => TypedValue::List(List::new()),
        }
    }

    /// Whether a collection has no elements left (Redis deletes such keys).
    /// A counter is never empty.
    pub fn is_empty_collection(&self) -> bool {
        match self {
            TypedValue::Counter(_) => false,
            TypedValue::Hash(h) => h.is_empty(),
            TypedValue::Set(s) => s.is_empty(),
            TypedValue::ZSet(z) => z.is_empty(),
            TypedValue::List(l) => l.is_empty(),
        }
    }

    /// Removes every element (observed removes); a counter is left as is.
    pub fn clear(&mut self) {
        match self {
            TypedValue::Counter(_) => {}
            TypedValue::Hash(h) => h.clear(),
            TypedValue::Set(s) => s.clear(),
            TypedValue::ZSet(z) => z.clear(),
            TypedValue::List(l) => l.clear(),
        }
    }

    /// Writes what this value shows into `target` (a value of the same
    /// kind) as new writes of `target`'s key: COPY and RENAME must not carry
    /// one key's version tags into another key's history.
    pub fn copy_contents_into(&self, target: &mut TypedValue) {
        match (self, target) {
            (TypedValue::Counter(src), TypedValue::Counter(dst)) => {
                dst.set(src.value());
                if src.is_float() {
                    dst.mark_float();
                }
            }
            (TypedValue::Hash(src), TypedValue::Hash(dst)) => {
                for (field, tags) in src.iter() {
                    if let Some(value) = HashField::latest(tags) {
                        dst.insert(field.clone(), HashField::new(value.clone()));
                    }
                }
            }
            (TypedValue::Set(src), TypedValue::Set(dst)) => {
                for member in src.keys() {
                    dst.insert(member.clone(), ());
                }
            }
            (TypedValue::ZSet(src), TypedValue::ZSet(dst)) => {
                for (score, member) in src.sorted() {
                    dst.set(member, score);
                }
            }
            (TypedValue::List(src), TypedValue::List(dst)) => {
                for value in src.values() {
                    dst.push_back(value);
                }
            }
            _ => {}
        }
    }

    /// Joins a value of the same type; one of another type is ignored
    /// (the caller decides which type a key has).
    pub fn merge(&mut self, other: &TypedValue) {
        match (self, other) {
            (TypedValue::Counter(a), TypedValue::Counter(b)) => a.merge(b),
            (TypedValue::Hash(a), TypedValue::Hash(b)) => a.merge(b),
            (TypedValue::Set(a), TypedValue::Set(b)) => a.merge(b),
            (TypedValue::ZSet(a), TypedValue::ZSet(b)) => a.merge(b),
            (TypedValue::List(a), TypedValue::List(b)) => a.merge(b),
            _ => {}
        }
    }

    /// Names the write `dot` coordinated at `now_ms` on top of the client's
    /// `observed` context; `stored` are the coordinator's stored values of
    /// this key (its own counter totals come from them).
    pub fn stamp(
        &mut self,
        dot: &Dot,
        observed: &VersionVector,
        now_ms: u64,
        authority: Authority,
        stored: &[&TypedValue],
    ) {
        match self {
            TypedValue::Counter(c) => {
                let own = Counter::own_entry(
                    stored.iter().filter_map(|v| match v {
                        TypedValue::Counter(c) => Some(c),
                        _ => None,
                    }),
                    &dot.node,
                );
                c.stamp(dot, now_ms, authority, own);
            }
            TypedValue::Hash(h) => h.stamp(dot, observed, now_ms),
            TypedValue::Set(s) => s.stamp(dot, observed, now_ms),
            TypedValue::List(l) => l.stamp(dot, observed, now_ms),
            TypedValue::ZSet(z) => {
                let zs: Vec<&ZSet> = stored
                    .iter()
                    .filter_map(|v| match v {
                        TypedValue::ZSet(z) => Some(z),
                        _ => None,
                    })
                    .collect();
                z.stamp(dot, observed, now_ms, authority, &zs);
            }
        }
    }

    /// Rough stored size in bytes.
    pub fn approx_len(&self) -> usize {
        match self {
            TypedValue::Counter(c) => c.approx_len(),
            TypedValue::Hash(h) => h
                .iter()
                .map(|(k, tags)| k.len() + tags.values().map(|f| f.value.len() + 32).sum::<usize>())
                .sum(),
            TypedValue::Set(s) => s.iter().map(|(k, tags)| k.len() + tags.len() * 24).sum(),
            TypedValue::ZSet(z) => z.approx_len(),
            TypedValue::List(l) => l.approx_len(),
        }
    }
}
