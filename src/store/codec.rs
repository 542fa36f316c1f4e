//! How records look on disk; shared by every [`super::ReplicaStore`] so the
//! in-memory store orders keys exactly like fjall does.

use crate::core::{Object, ring_hash};
use bytes::Bytes;

/// First byte of every encoded object; bump it when the layout changes so an
/// old binary reports new records as unreadable instead of misreading them.
const FORMAT_V1: u8 = 1;

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Empty record or unknown format byte.
    #[error("unknown record format {0:?}")]
    Format(Option<u8>),
    /// The body does not decode.
    #[error("corrupt record: {0}")]
    Body(#[from] postcard::Error),
}

/// 8-byte big-endian ring hash ++ user key.
pub fn record_key(key: &[u8]) -> Vec<u8> {
    let mut rk = Vec::with_capacity(8 + key.len());
    rk.extend_from_slice(&ring_hash(key).to_be_bytes());
    rk.extend_from_slice(key);
    rk
}

/// Splits a record key into (ring hash, user key).
pub fn split_record_key(rk: &[u8]) -> Option<(u64, Bytes)> {
    let (hash, key) = rk.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*hash), Bytes::copy_from_slice(key)))
}

/// Encodes an object for storage.
pub fn encode_object(obj: &Object) -> Vec<u8> {
    let out = vec![FORMAT_V1];
    // Serialising plain structs, strings and integers into a Vec cannot fail.
    match postcard::to_extend(obj, out) {
        Ok(v) => v,
        Err(_) => vec![FORMAT_V1],
    }
}

/// Decodes a stored object.
pub fn decode_object(raw: &[u8]) -> Result<Object, DecodeError> {
    match raw.split_first() {
        Some((&FORMAT_V1, body)) => Ok(postcard::from_bytes(body)?),
        Some((&other, _)) => Err(DecodeError::Format(Some(other))),
        None => Err(DecodeError::Format(None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{NodeId, Payload, VersionVector};

    #[test]
    fn objects_round_trip_and_garbage_is_an_error() {
        let mut obj = Object::new();
        obj.update(
            &VersionVector::new(),
            &NodeId::new("a"),
            Payload::value("v"),
            7,
        );
        let raw = encode_object(&obj);
        assert_eq!(decode_object(&raw).ok(), Some(obj));
        assert!(decode_object(&[]).is_err());
        assert!(decode_object(&[9, 1, 2]).is_err());
        assert!(decode_object(&[FORMAT_V1, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn record_keys_sort_by_ring_hash() {
        let rk = record_key(b"hello");
        let (hash, key) = split_record_key(&rk).expect("8-byte prefix");
        assert_eq!(hash, ring_hash(b"hello"));
        assert_eq!(&key[..], b"hello");
    }
}
