//! Where a key sits on the ring.
//!
//! The ring hash's top 14 bits are the key's Redis Cluster hash slot
//! (CRC16-XMODEM mod 16384, hashing only the `{tag}` when the key has one),
//! so a partition — the top log2(Q) bits, Q a power of two up to 16384 — is
//! a run of consecutive slots: `partition = slot >> (14 - log2 Q)`. That is
//! what lets a Redis Cluster client route a key to its coordinator, and
//! what puts keys sharing a hash tag on the same replicas. The low 50 bits
//! come from the key's MD5 (as the Dynamo paper hashes keys), so keys of
//! one slot still spread evenly below it: storage orders records by this
//! value, a partition is one contiguous range on disk, and SCAN uses it as
//! a numeric cursor.

use md5::{Digest, Md5};

/// Hash slots of the Redis Cluster key space.
pub const SLOTS: usize = 16384;
/// Bits of the ring hash below the slot.
const SLOT_SHIFT: u32 = 64 - 14;

/// The key's Redis Cluster hash slot (what `CLUSTER KEYSLOT` answers).
pub fn key_slot(key: &[u8]) -> u16 {
    redis_protocol::redis_keyslot(key)
}

/// The key's position on the 64-bit ring: its hash slot in the top 14
/// bits, then 50 bits of its MD5.
pub fn ring_hash(key: &[u8]) -> u64 {
    let digest = Md5::digest(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let spread = u64::from_be_bytes(first) >> 14;
    (u64::from(key_slot(key)) << SLOT_SHIFT) | spread
}

/// The first ring hash of `slot` (its keys hash from here up to the next
/// slot's start).
pub fn slot_start_hash(slot: u16) -> u64 {
    u64::from(slot) << SLOT_SHIFT
}

/// The slot a ring hash belongs to.
pub fn slot_of_hash(hash: u64) -> u16 {
    (hash >> SLOT_SHIFT) as u16
}

/// Most databases (SELECT indexes) a node can be configured with. Below
/// `{` (0x7b), so a database's key prefix never opens a hash tag.
pub const MAX_DATABASES: usize = 64;

/// Database keys of db 1 and up are stored as `PREFIX db key`; a db-0 key
/// that happens to start with `PREFIX` is stored as `PREFIX 0 key`, so no
/// user key of one database can ever be taken for a key of another.
const DB_PREFIX: &[u8] = b"\xff\xfe";

/// The stored name of `key` in database `db` (db 0 keys, the common case,
/// are stored as they are).
pub fn db_key(db: u8, key: &[u8]) -> Vec<u8> {
    if db == 0 && !key.starts_with(DB_PREFIX) {
        return key.to_vec();
    }
    let mut stored = Vec::with_capacity(DB_PREFIX.len() + 1 + key.len());
    stored.extend_from_slice(DB_PREFIX);
    stored.push(db);
    stored.extend_from_slice(key);
    stored
}

/// Whether `key` in database `db` is stored under its own name.
pub fn stored_as_is(db: u8, key: &[u8]) -> bool {
    db == 0 && !key.starts_with(DB_PREFIX)
}

/// The database and user key of a stored name (the inverse of [`db_key`]).
pub fn split_db_key(stored: &[u8]) -> (u8, &[u8]) {
    match stored.strip_prefix(DB_PREFIX) {
        Some([db, key @ ..]) => (*db, key),
        _ => (0, stored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        assert_eq!(ring_hash(b"a"), ring_hash(b"a"));
        assert_ne!(ring_hash(b"a"), ring_hash(b"b"));
    }

    #[test]
    fn slots_match_redis_cluster() {
        // Values from redis-server's CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
        // An empty tag hashes the whole key.
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            redis_protocol::redis_keyslot(b"foo{}{bar}")
        );
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
    }

    #[test]
    fn the_slot_is_the_top_of_the_ring_hash() {
        for key in [&b"foo"[..], b"bar", b"{tag}x", b"", b"\xff\x00"] {
            assert_eq!(slot_of_hash(ring_hash(key)), key_slot(key));
        }
        // Keys sharing a tag share a slot and so a partition, whatever Q.
        let (a, b) = (ring_hash(b"{t}a"), ring_hash(b"{t}b"));
        assert_eq!(a >> SLOT_SHIFT, b >> SLOT_SHIFT);
        assert_ne!(a, b);
    }

    #[test]
    fn database_keys_round_trip_and_never_collide() {
        for db in [0u8, 1, 15, 63] {
            for key in [&b"foo"[..], b"", b"\xff\xfe", b"\xff\xfe\x01x", b"{t}a"] {
                let stored = db_key(db, key);
                assert_eq!(split_db_key(&stored), (db, key));
            }
        }
        // A db-0 key that looks like a db-1 key is not one.
        assert_ne!(db_key(0, b"\xff\xfe\x01x"), db_key(1, b"x"));
        // The prefix keeps the user's hash tag.
        assert_eq!(key_slot(&db_key(3, b"{user}.a")), key_slot(b"user"));
    }
}
