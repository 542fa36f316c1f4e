//! The cluster secret every member shares, and the keys derived from it.
//!
//! One secret serves two purposes, each with its own derived key so a value
//! computed for one can never be replayed as the other: authenticating
//! cluster-port connections (the handshake in `net::auth`) and signing the
//! context tokens clients carry between DYN.GET and DYN.PUT. Because the
//! keys depend on the secret alone, a token issued by one node verifies on
//! every node of the cluster.

use hmac::{KeyInit, Mac};
use std::fmt;

/// HMAC-SHA-256, the one MAC dynkv uses.
pub type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Label of the key that authenticates cluster-port connections.
const HANDSHAKE_LABEL: &[u8] = b"dynkv/v1/cluster-handshake";
/// Label of the key that signs client context tokens.
const CONTEXT_LABEL: &[u8] = b"dynkv/v1/context-token";

/// A 32-byte key derived from the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DerivedKey([u8; 32]);

impl DerivedKey {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A MAC keyed with this key (HMAC accepts keys of any length, so this
    /// cannot fail).
    pub fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKey(<redacted>)")
    }
}

/// The shared cluster secret (`--cluster-secret`, `--cluster-secret-file`,
/// or generated in the data dir of the node that founded the cluster).
///
/// Never printed by `Debug`, so it cannot leak through a logged config.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

/// A secret that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// Empty (after trimming the whitespace and newline a file ends with).
    #[error("the cluster secret is empty")]
    Empty,
}

impl ClusterSecret {
    /// The secret from its text; surrounding whitespace (a file's final
    /// newline) is not part of it.
    pub fn new(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(text.as_bytes().to_vec()))
    }

    /// The key that authenticates cluster-port connections.
    pub fn handshake_key(&self) -> DerivedKey {
        self.derive(HANDSHAKE_LABEL)
    }

    /// The key that signs client context tokens.
    pub fn context_key(&self) -> DerivedKey {
        self.derive(CONTEXT_LABEL)
    }

    fn derive(&self, label: &[u8]) -> DerivedKey {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(label);
        DerivedKey(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_secret_and_purpose() -> Result<(), SecretError> {
        let a = ClusterSecret::new("alpha\n")?;
        assert_eq!(a, ClusterSecret::new("  alpha")?);
        let b = ClusterSecret::new("beta")?;
        assert_ne!(a.handshake_key(), b.handshake_key());
        assert_ne!(a.handshake_key(), a.context_key());
        assert_eq!(a.context_key(), ClusterSecret::new("alpha")?.context_key());
        assert_eq!(ClusterSecret::new(" \n"), Err(SecretError::Empty));
        assert!(!format!("{a:?}").contains("alpha"));
        Ok(())
    }
}
