//! The opaque context token handed to clients by DYN.GET and taken back by
//! DYN.PUT / DYN.DEL: a version vector, postcard-encoded, followed by a
//! truncated HMAC, then base64url so it can be pasted into redis-cli.
//!
//! A token comes back from a client, so it is untrusted input. Without the
//! MAC a client could name any counter for any actor (`u64::MAX`, say) and
//! make the cluster stamp later writes with dots it has already "seen",
//! hiding them. The MAC is keyed by a key derived from the cluster secret
//! ([`super::secret::ClusterSecret::context_key`]), so a token from DYN.GET
//! on one node verifies on every node of the same cluster, and only there.

use super::secret::DerivedKey;
use super::version::VersionVector;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;

/// Bytes of the HMAC-SHA-256 kept in a token: 128 bits is far beyond what
/// an online forger can guess, and keeps tokens short.
pub const CONTEXT_MAC_LEN: usize = 16;

/// Longest token accepted (base64 text), so a client cannot make a node
/// decode megabytes: a version vector names a few actors per node.
pub const MAX_CONTEXT_TOKEN_LEN: usize = 64 * 1024;

/// A context token that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    /// Not base64url.
    #[error("context is not a token returned by DYN.GET (bad base64)")]
    Encoding,
    /// Longer than [`MAX_CONTEXT_TOKEN_LEN`].
    #[error("context is not a token returned by DYN.GET (too long)")]
    TooLong,
    /// The MAC does not match: altered, forged, or from another cluster.
    #[error(
        "context is not a token returned by DYN.GET in this cluster (signature mismatch: altered, forged, or from another cluster)"
    )]
    Forged,
    /// Signed, but not a version vector (cannot happen for tokens this
    /// cluster issued).
    #[error("context is not a token returned by DYN.GET (bad contents)")]
    Contents,
}

/// Encodes and signs a context; the empty history is the empty string.
pub fn encode_context(vv: &VersionVector, key: &DerivedKey) -> String {
    if vv.is_empty() {
        return String::new();
    }
    // Encoding a BTreeMap of strings and integers into a Vec cannot fail.
    let raw = postcard::to_allocvec(vv).unwrap_or_default();
    seal_context_body(&raw, key)
}

/// Signs `body` into a token exactly as [`encode_context`] signs an encoded
/// history, whatever the bytes are. Only the holder of `key` can do this;
/// it lets tests and the fuzzer reach the history decoder behind the MAC.
pub fn seal_context_body(body: &[u8], key: &DerivedKey) -> String {
    let mut raw = body.to_vec();
    raw.extend_from_slice(&sign(body, key));
    URL_SAFE_NO_PAD.encode(raw)
}

/// Verifies and decodes a token from [`encode_context`] made with the same
/// key; the empty string is the empty history.
pub fn decode_context(token: &[u8], key: &DerivedKey) -> Result<VersionVector, ContextError> {
    if token.is_empty() {
        return Ok(VersionVector::new());
    }
    if token.len() > MAX_CONTEXT_TOKEN_LEN {
        return Err(ContextError::TooLong);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ContextError::Encoding)?;
    let split = raw
        .len()
        .checked_sub(CONTEXT_MAC_LEN)
        .ok_or(ContextError::Forged)?;
    let (body, tag) = raw.split_at(split);
    let mut mac = key.mac();
    mac.update(body);
    // Constant time: a forger learns nothing from how long a check takes.
    mac.verify_truncated_left(tag)
        .map_err(|_| ContextError::Forged)?;
    postcard::from_bytes(body).map_err(|_| ContextError::Contents)
}

fn sign(body: &[u8], key: &DerivedKey) -> [u8; CONTEXT_MAC_LEN] {
    let mut mac = key.mac();
    mac.update(body);
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; CONTEXT_MAC_LEN];
    tag.copy_from_slice(&full[..CONTEXT_MAC_LEN]);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::secret::{ClusterSecret, SecretError};
    use crate::core::version::NodeId;

    fn key(secret: &str) -> Result<DerivedKey, SecretError> {
        Ok(ClusterSecret::new(secret)?.context_key())
    }

    #[test]
    fn round_trip() -> Result<(), SecretError> {
        let k = key("s1")?;
        let vv: VersionVector = [(NodeId::new("n1"), 3), (NodeId::new("n2"), 7)]
            .into_iter()
            .collect();
        let token = encode_context(&vv, &k);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode_context(token.as_bytes(), &k), Ok(vv));
        assert_eq!(decode_context(b"", &k), Ok(VersionVector::new()));
        assert_eq!(decode_context(b"!!!", &k), Err(ContextError::Encoding));
        Ok(())
    }

    #[test]
    fn forged_altered_or_foreign_tokens_are_refused() -> Result<(), SecretError> {
        let k = key("s1")?;
        let vv: VersionVector = [(NodeId::new("n1#abc"), u64::MAX)].into_iter().collect();
        // The unsigned encoding an older dynkv issued, or a forger crafts.
        let unsigned = URL_SAFE_NO_PAD.encode(postcard::to_allocvec(&vv).unwrap_or_default());
        assert_eq!(
            decode_context(unsigned.as_bytes(), &k),
            Err(ContextError::Forged)
        );
        // Signed by another cluster.
        let foreign = encode_context(&vv, &key("s2")?);
        assert_eq!(
            decode_context(foreign.as_bytes(), &k),
            Err(ContextError::Forged)
        );
        // One bit flipped in the body of a genuine token.
        let good = encode_context(&vv, &k);
        let mut raw = URL_SAFE_NO_PAD.decode(&good).unwrap_or_default();
        raw[1] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(
            decode_context(altered.as_bytes(), &k),
            Err(ContextError::Forged)
        );
        assert_eq!(decode_context(b"AAAA", &k), Err(ContextError::Forged));
        let huge = vec![b'A'; MAX_CONTEXT_TOKEN_LEN + 1];
        assert_eq!(decode_context(&huge, &k), Err(ContextError::TooLong));
        Ok(())
    }
}
