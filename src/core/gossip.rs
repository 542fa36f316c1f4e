//! Gossip by digest: what two nodes must send each other so that a round
//! between nodes that already agree costs a few dozen bytes instead of two
//! full cluster states (at Q = 16384 and 1,000 members a state is ~100 KB).
//!
//! The caller sends the [`StateDigest`] of its state; the peer answers with
//! [`on_digest`]'s decision; the caller pushes its own state only when it
//! holds something the peer may lack ([`must_push`]). Merging stays
//! [`ClusterState::merge`]: this module only decides who sends what.

use super::membership::ClusterState;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A state's version and a hash of its encoding: equal digests mean equal
/// states (up to a 128-bit hash collision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StateDigest {
    /// The state's version.
    pub version: u64,
    /// The first 16 bytes of SHA-256 over the state's postcard encoding.
    pub hash: [u8; 16],
}

impl StateDigest {
    /// The digest of `state`.
    pub fn of(state: &ClusterState) -> StateDigest {
        let encoded = postcard::to_allocvec(state).unwrap_or_default();
        let full = Sha256::digest(&encoded);
        let mut hash = [0u8; 16];
        hash.copy_from_slice(&full[..16]);
        StateDigest {
            version: state.version,
            hash,
        }
    }
}

/// What a peer answers to a digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestReply {
    /// Same state: nothing to send.
    Same,
    /// Mine is at least as new: I send it (the caller merges it, and pushes
    /// back whatever the merge added).
    SendMine,
    /// Yours is newer: send it to me.
    SendYours,
}

/// The peer's side: `mine` against the caller's digest `theirs`.
pub fn on_digest(mine: &StateDigest, theirs: &StateDigest) -> DigestReply {
    if mine == theirs {
        DigestReply::Same
    } else if mine.version >= theirs.version {
        DigestReply::SendMine
    } else {
        DigestReply::SendYours
    }
}

/// After merging the state `heard` from the peer: send ours back when it is
/// not exactly what the peer holds (we knew members it did not, or the merge
/// made a new version). Compared as values: cheaper than a digest, which
/// encodes and hashes the whole state.
pub fn must_push(ours_after_merge: &ClusterState, heard: &ClusterState) -> bool {
    ours_after_merge != heard
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Member, NodeId};

    fn member(port: u16) -> Member {
        Member {
            client_addr: format!("127.0.0.1:{port}"),
            cluster_addr: format!("127.0.0.1:{}", port + 10000),
            cluster_client_addr: None,
        }
    }

    #[test]
    fn digests_decide_who_sends() {
        let a =
            ClusterState::founding("c".into(), NodeId::new("a"), member(1), 64, 3).expect("state");
        let b = a.with_member(NodeId::new("b"), member(2)).expect("join");
        let c = a.with_member(NodeId::new("c"), member(3)).expect("join");
        let (da, db, dc) = (
            StateDigest::of(&a),
            StateDigest::of(&b),
            StateDigest::of(&c),
        );
        assert_eq!(da, StateDigest::of(&a.clone()));
        assert_eq!(on_digest(&da, &da), DigestReply::Same);
        assert_eq!(on_digest(&db, &da), DigestReply::SendMine);
        assert_eq!(on_digest(&da, &db), DigestReply::SendYours);
        // Same version, different members: both sides end up sending.
        assert_eq!(db.version, dc.version);
        assert_ne!(db, dc);
        assert_eq!(on_digest(&dc, &db), DigestReply::SendMine);
        let merged = b.merge(&c).expect("merge");
        assert!(must_push(&merged, &c));
        // Hearing a newer state that covers ours: nothing to push back.
        let after = a.merge(&b).expect("merge");
        assert!(!must_push(&after, &b));
    }
}
