//! Node-to-node RPC decoding on arbitrary bytes: the length-delimited codec
//! on a byte stream, then header and body of every frame as the server
//! (`Envelope<Request>`) and the client (`Envelope<WireResponse<Response>>`)
//! decode them. The whole input is also tried as one frame payload, so the
//! envelope decoder is reached without a valid length prefix.
//!
//! Properties (beyond "no panic"):
//! - re-encoding the decoded frames gives back exactly the bytes consumed;
//! - a decoded envelope re-encodes to a payload whose header decodes to the
//!   same header and whose body re-encodes to the same bytes (stable).
#![no_main]

use bytes::BytesMut;
use dynkv::core::{Request, Response};
use dynkv::net::frame::{self, Envelope, Header, WireResponse};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};

fn envelope<T>(header: &Header, body: T) -> Envelope<T> {
    Envelope {
        protocol: header.protocol,
        cluster: header.cluster.clone(),
        from: header.from.clone(),
        id: header.id,
        body,
    }
}

/// Decodes `body` as `T`; if it decodes, checks the re-encoding is stable.
fn check_body<T: Serialize + DeserializeOwned>(header: &Header, body: &[u8]) {
    let Ok(decoded) = frame::decode_body::<T>(body) else {
        return;
    };
    // Over-long frames are refused by encode, never sent; inputs here are
    // far below the limit.
    let Ok(payload) = frame::encode(&envelope(header, decoded)) else {
        return;
    };
    let (header2, body2) = frame::decode_header(&payload).expect("own header decodes");
    assert_eq!(&header2, header, "header changed across a round trip");
    let decoded2 = frame::decode_body::<T>(body2).expect("own body decodes");
    let payload2 = frame::encode(&envelope(&header2, decoded2)).expect("re-encodes");
    assert_eq!(payload, payload2, "encoding is not stable");
}

fn check_payload(payload: &[u8]) {
    let Ok((header, body)) = frame::decode_header(payload) else {
        return;
    };
    check_body::<Request>(&header, body);
    check_body::<WireResponse<Response>>(&header, body);
}

fuzz_target!(|input: &[u8]| {
    check_payload(input);

    let mut codec = frame::codec();
    let mut buf = BytesMut::from(input);
    let mut reencoded = BytesMut::new();
    while let Ok(Some(payload)) = codec.decode(&mut buf) {
        check_payload(&payload);
        frame::codec()
            .encode(payload.freeze(), &mut reencoded)
            .expect("a decoded frame re-encodes");
    }
    // The codec consumes a frame's length prefix before its payload has
    // arrived, so the frames' own bytes are the prefix to compare.
    assert_eq!(
        &reencoded[..],
        &input[..reencoded.len()],
        "frames re-encode to other bytes"
    );
});
