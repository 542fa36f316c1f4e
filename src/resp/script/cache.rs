//! The node's script cache: SHA1 hex digest -> body, as SCRIPT LOAD and
//! EVAL fill it and EVALSHA reads it. Each node keeps its own, as each
//! Redis server does; clients reload on NOSCRIPT.

use bytes::Bytes;
use dashmap::DashMap;
use sha1::{Digest, Sha1};

/// The lower-case hex SHA1 of `data` (what EVALSHA names a script by).
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Scripts known to this node.
#[derive(Debug, Default)]
pub struct ScriptCache {
    scripts: DashMap<String, Bytes>,
}

impl ScriptCache {
    /// Remembers `body`; returns its digest.
    pub fn insert(&self, body: Bytes) -> String {
        let sha = sha1_hex(&body);
        self.scripts.entry(sha.clone()).or_insert(body);
        sha
    }

    /// The script named by `sha` (any case).
    pub fn get(&self, sha: &[u8]) -> Option<Bytes> {
        let sha = std::str::from_utf8(sha).ok()?.to_ascii_lowercase();
        self.scripts.get(&sha).map(|body| body.clone())
    }

    /// Whether `sha` is known.
    pub fn contains(&self, sha: &[u8]) -> bool {
        self.get(sha).is_some()
    }

    /// Forgets every script.
    pub fn clear(&self) {
        self.scripts.clear();
    }

    /// Number of scripts cached.
    pub fn len(&self) -> usize {
        self.scripts.len()
    }

    /// Whether none is cached.
    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_redis_and_lookup_ignores_case() {
        // SCRIPT LOAD "return 1" on redis-server.
        assert_eq!(
            sha1_hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
        let cache = ScriptCache::default();
        let sha = cache.insert(Bytes::from_static(b"return 1"));
        assert!(cache.contains(sha.to_ascii_uppercase().as_bytes()));
        cache.clear();
        assert!(!cache.contains(sha.as_bytes()));
    }
}
