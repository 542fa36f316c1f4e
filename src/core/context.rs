//! The opaque context token handed to clients by DYN.GET and taken back by
//! DYN.PUT / DYN.DEL: a version vector, postcard-encoded, then base64url so it
//! can be pasted into redis-cli.

use super::version::VersionVector;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A context token that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    /// Not base64url.
    #[error("context is not a token returned by DYN.GET (bad base64)")]
    Encoding,
    /// Base64 fine, but not a version vector.
    #[error("context is not a token returned by DYN.GET (bad contents)")]
    Contents,
}

/// Encodes a context; the empty history is the empty string.
pub fn encode_context(vv: &VersionVector) -> String {
    if vv.is_empty() {
        return String::new();
    }
    // Encoding a BTreeMap of strings and integers into a Vec cannot fail.
    let raw = postcard::to_allocvec(vv).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a token from [`encode_context`]; the empty string is the empty history.
pub fn decode_context(token: &[u8]) -> Result<VersionVector, ContextError> {
    if token.is_empty() {
        return Ok(VersionVector::new());
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ContextError::Encoding)?;
    postcard::from_bytes(&raw).map_err(|_| ContextError::Contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::version::NodeId;

    #[test]
    fn round_trip() {
        let vv: VersionVector = [(NodeId::new("n1"), 3), (NodeId::new("n2"), 7)]
            .into_iter()
            .collect();
        let token = encode_context(&vv);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode_context(token.as_bytes()), Ok(vv));
        assert_eq!(decode_context(b""), Ok(VersionVector::new()));
        assert!(decode_context(b"!!!").is_err());
    }
}
