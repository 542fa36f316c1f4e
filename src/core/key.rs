//! Where a key sits on the ring.

use md5::{Digest, Md5};

/// The key's position on the 64-bit ring: the first 8 bytes of its MD5, as the
/// Dynamo paper hashes keys. Storage orders records by this value, so a
/// partition (a contiguous hash range) is a contiguous range on disk and SCAN
/// can use it as a numeric cursor.
pub fn ring_hash(key: &[u8]) -> u64 {
    let digest = Md5::digest(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        assert_eq!(ring_hash(b"a"), ring_hash(b"a"));
        assert_ne!(ring_hash(b"a"), ring_hash(b"b"));
        // md5("") = d41d8cd98f00b204...
        assert_eq!(ring_hash(b""), 0xd41d_8cd9_8f00_b204);
    }
}
