//! The mutual challenge–response handshake that opens every cluster-port
//! connection, before any envelope is read or written.
//!
//! ```text
//! client -> server   HELLO_MAGIC (8 bytes) | client nonce (32)
//! server -> client   server nonce (32) | HMAC(k, "server" | cn | sn) (32)
//! client -> server   HMAC(k, "client" | cn | sn) (32)
//! server -> client   ACCEPTED (1 byte)
//! ```
//!
//! `k` is the handshake key derived from the cluster secret. Each side
//! proves it knows `k` over a nonce the other side just chose, so a recorded
//! handshake cannot be replayed, and the role labels keep a server's proof
//! from being reflected as a client's. The server sends nothing but its
//! nonce and proof before the client has proven itself: no cluster id, no
//! refusal text. A peer that fails gets the connection closed.
//!
//! This authenticates the two ends; it does not encrypt what follows.

use std::time::Duration;

use hmac::Mac;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::DerivedKey;

/// First bytes a client sends: names the handshake and its version, so
/// anything else (an old dynkv, a stray client) is told apart at once.
pub const HELLO_MAGIC: &[u8; 8] = b"DYNKVAU1";
/// Bytes of each nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of each proof (a full HMAC-SHA-256).
pub const PROOF_LEN: usize = 32;
/// The server's last handshake byte: the client is in.
const ACCEPTED: u8 = 1;

/// How long a handshake may take on the server, so a peer that connects and
/// sends nothing (or one byte a minute) cannot hold a connection open.
pub const SERVER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The first bytes were not [`HELLO_MAGIC`]: not a dynkv node of this
    /// version (or not dynkv at all).
    #[error("the peer does not speak dynkv's authenticated cluster protocol")]
    NotDynkv,
    /// The peer's proof did not verify: it does not hold the same secret.
    #[error("the peer's proof of the cluster secret did not verify")]
    BadProof,
    /// The server closed the connection after our proof: it rejected it.
    #[error("the peer closed the connection after our proof")]
    Rejected,
    /// The socket failed or closed mid-handshake.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A proof for `role` over the two nonces.
fn proof(key: &DerivedKey, role: &[u8], client_nonce: &[u8], server_nonce: &[u8]) -> [u8; 32] {
    let mut mac = key.mac();
    mac.update(role);
    mac.update(client_nonce);
    mac.update(server_nonce);
    mac.finalize().into_bytes().into()
}

/// Checks `tag` against the expected proof in constant time.
fn verify(
    key: &DerivedKey,
    role: &[u8],
    client_nonce: &[u8],
    server_nonce: &[u8],
    tag: &[u8],
) -> Result<(), HandshakeError> {
    let mut mac = key.mac();
    mac.update(role);
    mac.update(client_nonce);
    mac.update(server_nonce);
    mac.verify_slice(tag).map_err(|_| HandshakeError::BadProof)
}

/// The connecting side. On `Ok` the server has proven it knows the secret
/// and has accepted ours.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: &DerivedKey,
) -> Result<(), HandshakeError> {
    let client_nonce: [u8; NONCE_LEN] = rand::random();
    let mut hello = Vec::with_capacity(HELLO_MAGIC.len() + NONCE_LEN);
    hello.extend_from_slice(HELLO_MAGIC);
    hello.extend_from_slice(&client_nonce);
    stream.write_all(&hello).await?;
    stream.flush().await?;

    let mut challenge = [0u8; NONCE_LEN + PROOF_LEN];
    stream.read_exact(&mut challenge).await?;
    let (server_nonce, server_proof) = challenge.split_at(NONCE_LEN);
    verify(key, b"server", &client_nonce, server_nonce, server_proof)?;

    let ours = proof(key, b"client", &client_nonce, server_nonce);
    stream.write_all(&ours).await?;
    stream.flush().await?;
    let mut verdict = [0u8; 1];
    match stream.read_exact(&mut verdict).await {
        Ok(_) if verdict[0] == ACCEPTED => Ok(()),
        Ok(_) => Err(HandshakeError::Rejected),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(HandshakeError::Rejected),
        Err(e) => Err(e.into()),
    }
}

/// Where a failed server handshake stopped, for the caller's logging.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerStage {
    /// Before a valid hello: a port scanner, a stray client, an old dynkv.
    Hello,
    /// After a valid hello, so a dynkv node that failed to prove the
    /// secret (or gave up after our proof did not verify for it).
    Proof,
}

/// The accepting side. On `Ok` the client has proven it knows the secret.
/// Nothing but the server nonce and proof is written before that.
pub async fn server<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: &DerivedKey,
) -> Result<(), (ServerStage, HandshakeError)> {
    let mut hello = [0u8; HELLO_MAGIC.len() + NONCE_LEN];
    stream
        .read_exact(&mut hello)
        .await
        .map_err(|e| (ServerStage::Hello, e.into()))?;
    let (magic, client_nonce) = hello.split_at(HELLO_MAGIC.len());
    if magic != HELLO_MAGIC {
        return Err((ServerStage::Hello, HandshakeError::NotDynkv));
    }
    let proof_stage = |e: HandshakeError| (ServerStage::Proof, e);
    let server_nonce: [u8; NONCE_LEN] = rand::random();
    let mut challenge = Vec::with_capacity(NONCE_LEN + PROOF_LEN);
    challenge.extend_from_slice(&server_nonce);
    challenge.extend_from_slice(&proof(key, b"server", client_nonce, &server_nonce));
    stream
        .write_all(&challenge)
        .await
        .map_err(|e| proof_stage(e.into()))?;
    stream.flush().await.map_err(|e| proof_stage(e.into()))?;

    let mut theirs = [0u8; PROOF_LEN];
    stream
        .read_exact(&mut theirs)
        .await
        .map_err(|e| proof_stage(e.into()))?;
    verify(key, b"client", client_nonce, &server_nonce, &theirs).map_err(proof_stage)?;
    stream
        .write_all(&[ACCEPTED])
        .await
        .map_err(|e| proof_stage(e.into()))?;
    stream.flush().await.map_err(|e| proof_stage(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ClusterSecret;

    fn key(s: &str) -> DerivedKey {
        ClusterSecret::new(s)
            .map(|s| s.handshake_key())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn same_secret_passes_both_ways() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let k = key("x");
        let (c, s) = tokio::join!(client(&mut a, &k), server(&mut b, &k));
        assert!(c.is_ok(), "{c:?}");
        assert!(s.is_ok(), "{s:?}");
    }

    #[tokio::test]
    async fn different_secrets_fail_on_both_sides() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let (kx, ky) = (key("x"), key("y"));
        let server_side = async move {
            let r = server(&mut b, &ky).await;
            drop(b);
            r
        };
        let client_side = async move {
            let r = client(&mut a, &kx).await;
            // The client gives up on a bad server proof: its side closes.
            drop(a);
            r
        };
        let (c, s) = tokio::join!(client_side, server_side);
        assert!(matches!(c, Err(HandshakeError::BadProof)), "{c:?}");
        assert!(matches!(s, Err((ServerStage::Proof, _))), "{s:?}");
    }

    #[tokio::test]
    async fn a_stranger_gets_nothing_but_a_closed_connection() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"not a hello at all, just forty bytes....")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let s = server(&mut b, &key("x")).await;
        assert!(
            matches!(s, Err((ServerStage::Hello, HandshakeError::NotDynkv))),
            "{s:?}"
        );
        drop(b);
        let mut got = Vec::new();
        let _ = a.read_to_end(&mut got).await;
        assert!(got.is_empty(), "server wrote {got:?}");
    }
}
