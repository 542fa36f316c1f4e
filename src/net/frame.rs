//! Wire format of node-to-node RPC.
//!
//! Every frame is a big-endian `u32` length followed by that many bytes (the
//! tokio-util [`LengthDelimitedCodec`], capped at [`MAX_FRAME_LEN`]); the bytes
//! are a postcard-encoded [`Envelope`]. A client sends `Envelope<Req>`; a
//! server answers with `Envelope<WireResponse<Resp>>` carrying the same `id`.
//!
//! Postcard writes struct fields in order with no framing of its own, so an
//! envelope's bytes are exactly its [`Header`] followed by its body. The server
//! decodes the header first ([`decode_header`]) and checks protocol and cluster
//! before it touches the body: a peer speaking another protocol (whose body
//! types may differ) still gets a readable refusal. `protocol` must stay the
//! first field in every future version for that to keep working.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

use crate::core::NodeId;

/// Version of this wire format; peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest value a client can make dynkv store: the ceiling of the client
/// port's `proto-max-bulk-len` (32 MiB). It lives here, not in the RESP
/// front end, because it is this layer that must be able to carry it.
pub const MAX_VALUE_LEN: usize = 32 * 1024 * 1024;

/// Largest frame accepted or sent: a bound on memory per connection.
///
/// Every object the front end can create must fit in one frame, or it is
/// acknowledged to the client and then cannot replicate, hint or repair. A
/// key and a value are each at most [`MAX_VALUE_LEN`]; a replication `Put`
/// carries the key and every sibling of the object, so eight maximal pieces
/// (a key plus seven concurrent siblings) plus 1 MiB for contexts, headers
/// and postcard's length prefixes fit. Objects with more maximal siblings
/// than that fail their own call with a local error instead.
pub const MAX_FRAME_LEN: usize = 8 * MAX_VALUE_LEN + 1024 * 1024;

// The length prefix is a u32.
const _: () = assert!(MAX_FRAME_LEN <= u32::MAX as usize);

/// One message on the wire: routing header plus body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Sender's [`PROTOCOL_VERSION`].
    pub protocol: u16,
    /// Sender's cluster id; empty for a node that has not joined yet.
    pub cluster: String,
    /// Sending node.
    pub from: NodeId,
    /// Request id, chosen by the client; a response echoes it.
    pub id: u64,
    /// The message itself.
    pub body: T,
}

/// The fields of an [`Envelope`] before its body, decodable on their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// See [`Envelope::protocol`].
    pub protocol: u16,
    /// See [`Envelope::cluster`].
    pub cluster: String,
    /// See [`Envelope::from`].
    pub from: NodeId,
    /// See [`Envelope::id`].
    pub id: u64,
}

/// Body of a server's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireResponse<Resp> {
    /// The handler's answer.
    Ok(Resp),
    /// The request was not handled (wrong cluster or protocol); the reason is
    /// meant for humans and logs.
    Refused(String),
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// postcard failed (malformed bytes, or a body type mismatch).
    #[error("postcard: {0}")]
    Postcard(#[from] postcard::Error),
    /// The encoded envelope exceeds [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN} byte limit")]
    TooLarge(usize),
}

/// The length-prefix codec both sides use.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec()
}

/// Encodes an envelope into one frame payload (without the length prefix).
pub fn encode<T: Serialize>(envelope: &Envelope<T>) -> Result<Bytes, FrameError> {
    let bytes = postcard::to_stdvec(envelope)?;
    // Checked here so an oversized message fails its own call instead of
    // breaking the shared connection inside the codec.
    if bytes.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(bytes.len()));
    }
    Ok(Bytes::from(bytes))
}

/// Decodes the header of a frame payload, returning it and the body bytes.
pub fn decode_header(payload: &[u8]) -> Result<(Header, &[u8]), FrameError> {
    Ok(postcard::take_from_bytes::<Header>(payload)?)
}

/// Decodes a body returned by [`decode_header`].
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    Ok(postcard::from_bytes(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_body_round_trip() -> Result<(), FrameError> {
        let env = Envelope {
            protocol: PROTOCOL_VERSION,
            cluster: "c1".to_string(),
            from: NodeId::new("a"),
            id: 42,
            body: WireResponse::Ok(vec![1u8, 2, 3]),
        };
        let bytes = encode(&env)?;
        let (header, body) = decode_header(&bytes)?;
        assert_eq!(header.protocol, PROTOCOL_VERSION);
        assert_eq!(header.cluster, "c1");
        assert_eq!(header.from, NodeId::new("a"));
        assert_eq!(header.id, 42);
        let body: WireResponse<Vec<u8>> = decode_body(body)?;
        assert_eq!(body, env.body);
        Ok(())
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_header(&[0xff; 3]).is_err());
        assert!(decode_body::<WireResponse<String>>(&[9, 9, 9]).is_err());
    }
}
