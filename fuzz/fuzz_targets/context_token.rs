//! The context token a client hands back to DYN.PUT / DYN.DEL, on arbitrary
//! bytes, and the write a coordinator then applies with it.
//!
//! A token is signed, so arbitrary bytes almost never pass its MAC. The
//! input is therefore used twice: as a token as a client would send it (it
//! must be refused or decoded, never panic), and as the *body* of a token
//! that the target signs itself with the fuzz key, which reaches the history
//! decoder behind the signature check. The corpus holds such bodies.
//!
//! Properties (beyond "no panic"):
//! - a token that decodes re-encodes to a token that decodes to the same
//!   history;
//! - a write under that context, coordinated by any node the context names
//!   (or another), supersedes exactly what the context covers and is itself
//!   not covered by the context (its dot is new);
//! - the node's dot issuer either refuses the context or stamps a fresh dot
//!   and leaves an object that stores and reads back unchanged.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use dynkv::core::{
    ClusterSecret, DerivedKey, MAX_COUNTER, NodeId, Object, Payload, VersionVector, decode_context,
    encode_context, seal_context_body,
};
use dynkv::node::local::DotIssuer;
use dynkv::store::codec::{decode_object, encode_record};
use libfuzzer_sys::fuzz_target;

fn key() -> DerivedKey {
    ClusterSecret::new("fuzz")
        .expect("a constant secret is valid")
        .context_key()
}

fn decode(token: &[u8]) -> Option<VersionVector> {
    decode_context(token, &key()).ok()
}

fn encode(vv: &VersionVector) -> String {
    encode_context(vv, &key())
}

fuzz_target!(|body: &[u8]| {
    // As a client's token: refused or decoded, never a panic.
    let _ = decode(body);
    // As a signed body: the history decoder behind the MAC.
    let token = seal_context_body(body, &key());
    let Some(vv) = decode(token.as_bytes()) else {
        return;
    };
    let again = decode(encode(&vv).as_bytes()).expect("own token decodes");
    assert_eq!(again, vv, "context round trip");

    let mut coordinators: Vec<NodeId> = vv.entries().map(|(n, _)| n.clone()).take(4).collect();
    coordinators.push(NodeId::new("coordinator"));
    for coordinator in &coordinators {
        // An object that already holds one version by this coordinator.
        let mut object = Object::new();
        object.update(&VersionVector::new(), coordinator, Payload::value("old"), 1);
        let before = object.clone();
        let dot = object.update(&vv, coordinator, Payload::value(Bytes::from("new")), 2);
        assert!(
            !vv.covers(&dot),
            "a new write got a dot the context already covers"
        );
        for s in &before.siblings {
            let kept = object.siblings.iter().any(|o| o.dot == s.dot);
            assert_eq!(kept, !vv.covers(&s.dot), "superseded the wrong versions");
        }

        // The node's own path: one counter for all keys, leased in blocks.
        let issuer = DotIssuer::new(coordinator.clone(), 0, Arc::new(|_| Ok(())));
        let mut object = before.clone();
        if issuer
            .stamp(&mut object, &vv, Payload::value("new"), 3)
            .is_ok()
        {
            let fresh = object.context.get(coordinator);
            assert!(fresh <= MAX_COUNTER, "issued past the limit");
            assert!(
                fresh > vv.get(coordinator),
                "issued a dot the context covers"
            );
            let raw = encode_record(&Bytes::from_static(b"k"), &object);
            assert_eq!(
                decode_object(&raw).ok(),
                Some(object),
                "stamped object does not store"
            );
        } else {
            assert_eq!(object, before, "a refused write changed the object");
        }
    }
});
