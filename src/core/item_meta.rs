//! memcached's per-item meta state (stale, recache win handed out, a cas
//! the client chose), stored in the replicated value itself so every
//! replica, and so every node a client asks, sees the same item.

use serde::{Deserialize, Serialize};

/// A cas unique stored with the value instead of derived from its version.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ItemCas {
    /// Set by the client (meta `E`): reported as given.
    Chosen(u64),
    /// The unique reported before a write that memcached does not count
    /// as a modification (handing out a win, a touch of a stale item):
    /// kept so a client's cas taken before it still matches.
    Kept(u64),
}

impl ItemCas {
    /// The 64-bit unique.
    pub fn value(self) -> u64 {
        match self {
            ItemCas::Chosen(c) | ItemCas::Kept(c) => c,
        }
    }
}

/// The meta state of one memcached item. The default (no cas, not stale,
/// no win handed out) is what every plain write stores.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct ItemMeta {
    /// A stored cas unique, if any.
    pub cas: Option<ItemCas>,
    /// Marked stale (meta delete `I`, or a set with an older cas and `I`).
    pub stale: bool,
    /// A client was already handed the recache win (`W`); others get `Z`.
    pub win_sent: bool,
}

impl ItemMeta {
    /// Whether it holds nothing beyond a plain value.
    pub fn is_plain(&self) -> bool {
        *self == ItemMeta::default()
    }
}
