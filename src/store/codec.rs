//! How records look on disk; shared by every [`super::ReplicaStore`] and
//! hint store so the in-memory stores order and decode keys exactly like
//! fjall does.
//!
//! # Keys of any length
//! fjall keys stop at 65,535 bytes, but a Redis key may be longer. A key of
//! at most [`LONG_KEY`] bytes is stored as it is; a longer key is stored as
//! its first [`LONG_KEY`] bytes followed by the SHA-256 of the whole key, and
//! the whole key is kept inside the record value. The two forms cannot be
//! confused: a long form is always exactly `LONG_KEY + 32` bytes, a short one
//! at most `LONG_KEY`. Reads compare the stored whole key with the key asked
//! for, so even a digest collision reads as absent, never as another key.

use crate::core::{NodeId, Object, ring_hash};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Keys longer than this are stored as prefix ++ digest. 1 KiB keeps every
/// record key far below fjall's 64 KiB limit (with room for a hint's target
/// name in front) and keeps index blocks small, while the keys real clients
/// use (well under 1 KiB) keep their natural on-disk order and cost no hash.
pub const LONG_KEY: usize = 1024;

/// Length of the digest that ends a long key's stored form.
pub const KEY_DIGEST_LEN: usize = 32;

/// Largest record value fjall accepts (it panics beyond it).
pub const MAX_VALUE_LEN: usize = u32::MAX as usize;

/// Longest node name a hint can be kept for: hint keys put the name in
/// front of the key's stored form, and the whole must fit fjall's key limit.
pub const MAX_TARGET_LEN: usize = 1024;

/// First byte of a record written before keys could be long: the object
/// alone. Still decoded; never written any more.
const FORMAT_V1: u8 = 1;

/// First byte of a data record: the object plus, for a long key, the whole
/// key. Bump it when the layout changes so an old binary reports new
/// records as unreadable instead of misreading them.
const FORMAT_V2: u8 = 2;

/// First byte of a hint record: when it was first stored, the whole key of
/// a long key, and the object. Distinct from the data formats so a record
/// read from the wrong keyspace is reported instead of misread.
const HINT_FORMAT: u8 = 3;

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

/// Whether `key` is stored in its long form (prefix ++ digest).
pub fn is_long(key: &[u8]) -> bool {
    key.len() > LONG_KEY
}

/// Appends the stored form of `key` to `out`.
fn push_stored_key(out: &mut Vec<u8>, key: &[u8]) {
    match key.get(..LONG_KEY) {
        Some(prefix) if is_long(key) => {
            out.extend_from_slice(prefix);
            out.extend_from_slice(&Sha256::digest(key));
        }
        _ => out.extend_from_slice(key),
    }
}

/// Whether a stored key form (without any prefix) is the long form.
fn stored_form_is_long(stored: &[u8]) -> bool {
    stored.len() > LONG_KEY
}

/// 8-byte big-endian ring hash ++ the key's stored form.
pub fn record_key(key: &[u8]) -> Vec<u8> {
    let stored = key.len().min(LONG_KEY + KEY_DIGEST_LEN);
    let mut rk = Vec::with_capacity(8 + stored);
    rk.extend_from_slice(&ring_hash(key).to_be_bytes());
    push_stored_key(&mut rk, key);
    rk
}

/// The ring hash a record key starts with.
pub fn record_hash(rk: &[u8]) -> Option<u64> {
    rk.first_chunk::<8>().map(|h| u64::from_be_bytes(*h))
}

/// Recovers (ring hash, user key) from a record key and the whole key kept
/// in its value (long keys only). `None` when they do not agree: a long
/// record without its whole key, or a whole key that does not hash to this
/// record key.
pub fn resolve_record_key(rk: &[u8], full_key: Option<Bytes>) -> Option<(u64, Bytes)> {
    let (hash, stored) = rk.split_first_chunk::<8>()?;
    let hash = u64::from_be_bytes(*hash);
    resolve_stored(stored, rk, full_key, record_key).map(|key| (hash, key))
}

/// Shared by data and hint keys: a short stored form is the key itself; a
/// long one must be vouched for by the whole key, re-encoded to `whole`.
fn resolve_stored(
    stored: &[u8],
    whole: &[u8],
    full_key: Option<Bytes>,
    encode: impl Fn(&[u8]) -> Vec<u8>,
) -> Option<Bytes> {
    match full_key {
        None if !stored_form_is_long(stored) => Some(Bytes::copy_from_slice(stored)),
        Some(full) if stored_form_is_long(stored) && encode(&full) == whole => Some(full),
        _ => None,
    }
}

/// What a point read found once the record is decoded and checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// No record.
    Absent,
    /// The key's object.
    Found(Object),
    /// A record that does not decode.
    Unreadable(String),
    /// A record for another key whose long form has the same digest.
    Collision,
}

impl Lookup {
    /// Interprets the raw record stored for `key` (if any).
    pub fn of(key: &[u8], raw: Option<&[u8]>) -> Lookup {
        let Some(raw) = raw else {
            return Lookup::Absent;
        };
        match decode_record(raw) {
            Err(e) => Lookup::Unreadable(e.to_string()),
            Ok((full_key, object)) if key_matches(key, full_key.as_deref()) => {
                Lookup::Found(object)
            }
            Ok(_) => Lookup::Collision,
        }
    }
}

/// Whether a record's stored whole key (long keys only) belongs to `key`.
fn key_matches(key: &[u8], full_key: Option<&[u8]>) -> bool {
    match full_key {
        None => !is_long(key),
        Some(full) => is_long(key) && full == key,
    }
}

/// Encodes the record of `key` holding `obj`: the whole key goes in only
/// when the record key cannot hold it.
pub fn encode_record(key: &Bytes, obj: &Object) -> Vec<u8> {
    let full_key = is_long(key).then_some(key);
    encode_with(FORMAT_V2, &(full_key, obj))
}

/// Decodes a data record into (whole key of a long key, object).
pub fn decode_record(raw: &[u8]) -> Result<(Option<Bytes>, Object), DecodeError> {
    match raw.split_first() {
        Some((&FORMAT_V1, body)) => Ok((None, postcard::from_bytes(body)?)),
        Some((&FORMAT_V2, body)) => Ok(postcard::from_bytes(body)?),
        Some((&other, _)) => Err(DecodeError::Format(Some(other))),
        None => Err(DecodeError::Format(None)),
    }
}

/// Encodes an object alone, in the legacy `FORMAT_V1` layout (tests of
/// records written by older versions).
pub fn encode_object(obj: &Object) -> Vec<u8> {
    encode_with(FORMAT_V1, obj)
}

/// Decodes the object of a data record in any supported layout.
pub fn decode_object(raw: &[u8]) -> Result<Object, DecodeError> {
    decode_record(raw).map(|(_, obj)| obj)
}

fn encode_with<T: serde::Serialize + ?Sized>(format: u8, body: &T) -> Vec<u8> {
    // Serialising plain structs, byte strings and integers into a Vec cannot
    // fail; should it ever, the bare format byte reads back as corrupt
    // rather than as something else.
    postcard::to_extend(body, vec![format]).unwrap_or_else(|_| vec![format])
}

/// A decoded hint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintRecord {
    /// When the hint was first stored (ms since the epoch); `None` for a
    /// hint written by an older version, which did not keep it.
    pub stored_at_ms: Option<u64>,
    /// The whole key, for long keys only.
    pub full_key: Option<Bytes>,
    /// The object to deliver.
    pub object: Object,
}

/// Encodes a hint record for `key`.
pub fn encode_hint(key: &Bytes, stored_at_ms: u64, obj: &Object) -> Vec<u8> {
    let full_key = is_long(key).then_some(key);
    encode_with(HINT_FORMAT, &(stored_at_ms, full_key, obj))
}

/// Decodes a hint record (older versions stored the bare object).
pub fn decode_hint(raw: &[u8]) -> Result<HintRecord, DecodeError> {
    match raw.split_first() {
        Some((&FORMAT_V1, body)) => Ok(HintRecord {
            stored_at_ms: None,
            full_key: None,
            object: postcard::from_bytes(body)?,
        }),
        Some((&HINT_FORMAT, body)) => {
            let (stored_at_ms, full_key, object) = postcard::from_bytes(body)?;
            Ok(HintRecord {
                stored_at_ms: Some(stored_at_ms),
                full_key,
                object,
            })
        }
        Some((&other, _)) => Err(DecodeError::Format(Some(other))),
        None => Err(DecodeError::Format(None)),
    }
}

/// Whether a hint record read for `key` belongs to it (see [`Lookup`]).
pub fn hint_matches(key: &[u8], record: &HintRecord) -> bool {
    key_matches(key, record.full_key.as_deref())
}

/// Whether hints can be kept for `target`: its name leads every hint key,
/// ended by a 0 byte, so it must not contain one and must leave room for
/// the key.
pub fn valid_target(target: &NodeId) -> bool {
    let name = target.as_str().as_bytes();
    name.len() <= MAX_TARGET_LEN && !name.contains(&0)
}

/// Target name ++ 0 ++ the key's stored form. Callers check
/// [`valid_target`] first.
pub fn hint_key(target: &NodeId, key: &[u8]) -> Vec<u8> {
    let mut hk = hint_prefix(target);
    push_stored_key(&mut hk, key);
    hk
}

/// The prefix shared by every hint key of `target`.
pub fn hint_prefix(target: &NodeId) -> Vec<u8> {
    let name = target.as_str().as_bytes();
    let mut prefix = Vec::with_capacity(name.len() + 1 + LONG_KEY + KEY_DIGEST_LEN);
    prefix.extend_from_slice(name);
    prefix.push(0);
    prefix
}

/// Splits a hint key into (target, user key) given the whole key kept in
/// its record; `None` when they do not agree (see [`resolve_record_key`]).
pub fn resolve_hint_key(hk: &[u8], full_key: Option<Bytes>) -> Option<(NodeId, Bytes)> {
    let target = hint_target(hk)?;
    let stored = hk.get(target.as_str().len() + 1..)?;
    let key = resolve_stored(stored, hk, full_key, |k| hint_key(&target, k))?;
    Some((target, key))
}

/// The target a hint key belongs to.
pub fn hint_target(hk: &[u8]) -> Option<NodeId> {
    let end = hk.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(hk.get(..end)?).ok()?;
    Some(NodeId::new(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Payload, VersionVector};

    fn object() -> Object {
        let mut obj = Object::new();
        obj.update(
            &VersionVector::new(),
            &NodeId::new("a"),
            Payload::value("v"),
            7,
        );
        obj
    }

    #[test]
    fn objects_round_trip_and_garbage_is_an_error() {
        let obj = object();
        let key = Bytes::from("k");
        let raw = encode_record(&key, &obj);
        assert_eq!(decode_object(&raw).ok(), Some(obj.clone()));
        assert_eq!(decode_object(&encode_object(&obj)).ok(), Some(obj));
        assert!(decode_object(&[]).is_err());
        assert!(decode_object(&[9, 1, 2]).is_err());
        assert!(decode_object(&[FORMAT_V1, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_object(&[FORMAT_V2, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn record_keys_sort_by_ring_hash() {
        let rk = record_key(b"hello");
        assert_eq!(record_hash(&rk), Some(ring_hash(b"hello")));
        let (hash, key) = resolve_record_key(&rk, None).expect("short key");
        assert_eq!(hash, ring_hash(b"hello"));
        assert_eq!(&key[..], b"hello");
    }

    #[test]
    fn long_keys_have_a_fixed_length_form_that_no_short_key_has() {
        let at = vec![b'x'; LONG_KEY];
        let over = vec![b'x'; LONG_KEY + 1];
        assert_eq!(record_key(&at).len(), 8 + LONG_KEY);
        assert_eq!(record_key(&over).len(), 8 + LONG_KEY + KEY_DIGEST_LEN);
        assert_eq!(record_key(&vec![b'y'; 100_000]).len(), 8 + LONG_KEY + 32);
        // Same first LONG_KEY bytes, different tails: different records.
        let mut other = over.clone();
        other[LONG_KEY] = b'y';
        assert_ne!(record_key(&over), record_key(&other));
        assert_eq!(record_key(b"").len(), 8);
    }

    #[test]
    fn long_keys_resolve_only_with_their_own_whole_key() {
        let long = Bytes::from(vec![b'k'; LONG_KEY + 5]);
        let rk = record_key(&long);
        assert_eq!(resolve_record_key(&rk, None), None);
        let (_, key) = resolve_record_key(&rk, Some(long.clone())).expect("resolves");
        assert_eq!(key, long);
        let mut wrong = long.to_vec();
        wrong[LONG_KEY + 1] = b'z';
        assert_eq!(resolve_record_key(&rk, Some(Bytes::from(wrong))), None);
        // A short record key claiming a whole key is inconsistent too.
        assert_eq!(
            resolve_record_key(&record_key(b"a"), Some(Bytes::from("a"))),
            None
        );
    }

    #[test]
    fn lookups_check_the_whole_key() {
        let long = Bytes::from(vec![b'k'; LONG_KEY + 5]);
        let raw = encode_record(&long, &object());
        assert_eq!(Lookup::of(&long, Some(&raw)), Lookup::Found(object()));
        let mut other = long.to_vec();
        other[0] = b'j';
        assert_eq!(Lookup::of(&other, Some(&raw)), Lookup::Collision);
        assert_eq!(Lookup::of(&long, None), Lookup::Absent);
        assert!(matches!(
            Lookup::of(&long, Some(&[7])),
            Lookup::Unreadable(_)
        ));
    }

    #[test]
    fn hints_round_trip_with_time_and_long_keys() {
        let target = NodeId::new("n2");
        let long = Bytes::from(vec![b'h'; LONG_KEY * 3]);
        let raw = encode_hint(&long, 42, &object());
        let rec = decode_hint(&raw).expect("decodes");
        assert_eq!(rec.stored_at_ms, Some(42));
        assert!(hint_matches(&long, &rec));
        let hk = hint_key(&target, &long);
        assert_eq!(hk.len(), 2 + 1 + LONG_KEY + KEY_DIGEST_LEN);
        let (t, k) = resolve_hint_key(&hk, rec.full_key).expect("resolves");
        assert_eq!((t, k), (target.clone(), long));
        // Hints written before stored-at times existed still decode.
        let legacy = decode_hint(&encode_object(&object())).expect("legacy");
        assert_eq!(legacy.stored_at_ms, None);
        assert_eq!(legacy.object, object());
        assert_eq!(
            resolve_hint_key(&hint_key(&target, b""), None),
            Some((target, Bytes::new()))
        );
        assert!(!valid_target(&NodeId::new("a\0b")));
        assert!(!valid_target(&NodeId::new(&"n".repeat(MAX_TARGET_LEN + 1))));
    }
}
