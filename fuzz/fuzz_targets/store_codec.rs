//! The on-disk record codec on arbitrary bytes (a corrupt or foreign
//! record must be an error, never a panic), and what a store does with a
//! record it has decoded.
//!
//! Properties (beyond "no panic"):
//! - a data record that decodes re-encodes to a record that decodes to the
//!   same whole key and object (and the legacy layout likewise);
//! - a hint record likewise, keeping its stored-at time;
//! - the record and hint keys built for any key resolve back to that key;
//! - merging a decoded object into itself changes nothing once the object
//!   is in the form `merge` produces (merge is idempotent).
#![no_main]

use bytes::Bytes;
use dynkv::core::{NodeId, Object};
use dynkv::store::codec::{
    self, Lookup, decode_hint, decode_object, decode_record, encode_hint, encode_object,
    encode_record, hint_key, hint_matches, is_long, record_key, resolve_hint_key,
    resolve_record_key, valid_target,
};
use libfuzzer_sys::fuzz_target;

/// The key a decoded record stands for: its whole key when it carries one,
/// else any short key.
fn key_for(full_key: &Option<Bytes>) -> Bytes {
    full_key.clone().unwrap_or_else(|| Bytes::from_static(b"k"))
}

fn check_object(object: &Object) {
    let _ = object.winner();
    let _ = object.visible(u64::MAX / 2);
    let _ = object.is_dead(0);
    let _ = object.max_timestamp();
    // One merge brings any object into merge's own form (deduplicated,
    // sorted siblings); from there merging with itself must be a no-op.
    let mut once = Object::new();
    once.merge(object);
    let mut twice = once.clone();
    twice.merge(&once);
    assert_eq!(twice, once, "merge is not idempotent");
    assert!(once.descends(&once));
}

fuzz_target!(|raw: &[u8]| {
    if let Ok((full_key, object)) = decode_record(raw) {
        // Only a long key carries its whole key; a short one in that slot
        // is not something encode_record writes.
        if full_key.as_ref().is_none_or(|k| is_long(k)) {
            let key = key_for(&full_key);
            let again = decode_record(&encode_record(&key, &object)).expect("own record decodes");
            assert_eq!(
                again,
                (full_key.clone(), object.clone()),
                "record round trip"
            );
            assert_eq!(Lookup::of(&key, Some(raw)), Lookup::Found(object.clone()));
        }
        let legacy = decode_object(&encode_object(&object)).expect("own legacy record decodes");
        assert_eq!(legacy, object, "legacy round trip");
        check_object(&object);
    }
    let _ = Lookup::of(raw, Some(raw));

    if let Ok(hint) = decode_hint(raw) {
        if let Some(at) = hint.stored_at_ms
            && hint.full_key.as_ref().is_none_or(|k| is_long(k))
        {
            let key = key_for(&hint.full_key);
            let again =
                decode_hint(&encode_hint(&key, at, &hint.object)).expect("own hint decodes");
            assert_eq!(again, hint, "hint round trip");
            assert!(hint_matches(&key, &again));
        }
        check_object(&hint.object);
    }

    // The input as a user key: its record and hint keys resolve back to it.
    let key = Bytes::copy_from_slice(raw);
    let full = is_long(&key).then(|| key.clone());
    let rk = record_key(&key);
    assert_eq!(codec::record_hash(&rk), Some(dynkv::core::ring_hash(&key)));
    let (_, back) = resolve_record_key(&rk, full.clone()).expect("own record key resolves");
    assert_eq!(back, key);
    let target = NodeId::new("node-2");
    if valid_target(&target) {
        let hk = hint_key(&target, &key);
        assert_eq!(resolve_hint_key(&hk, full), Some((target, key.clone())));
    }
    // And as a stored key read back from disk: never a panic.
    let _ = resolve_record_key(raw, None);
    let _ = resolve_hint_key(raw, None);
    let _ = codec::hint_target(raw);
});
