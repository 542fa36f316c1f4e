//! The RESP request decoder the client port uses, on arbitrary bytes.
//!
//! Properties (beyond "no panic"):
//! - feeding the bytes in arbitrary chunks yields the same requests and the
//!   same final outcome as feeding them at once (TCP may cut anywhere);
//! - no request is empty (blank lines and `*0` are skipped);
//! - every request re-encoded as a RESP array decodes to itself;
//! - with the unauthenticated limits, the requests are a prefix of the
//!   authenticated ones, cut short only by an error.
#![no_main]

use bytes::{Bytes, BytesMut};
use dynkv::resp::request::{MAX_INLINE_LEN, RequestDecoder};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

/// What a decoder made of a byte stream: its requests, and how it stopped
/// (`None`: waiting for more input; `Some(text)`: a protocol error).
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<Vec<Bytes>>,
    error: Option<String>,
}

fn decoder(authenticated: bool) -> RequestDecoder {
    let mut dec = RequestDecoder::default();
    dec.set_authenticated(authenticated);
    dec
}

/// Feeds `input` in chunks of the given sizes (cycled), draining the
/// decoder after each, as the connection loop does.
fn run(input: &[u8], authenticated: bool, chunks: &[usize]) -> Outcome {
    let mut dec = decoder(authenticated);
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let mut fed = 0;
    let mut sizes = chunks.iter().cycle();
    while fed < input.len() {
        let size = sizes.next().copied().unwrap_or(input.len()).max(1);
        let end = (fed + size).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(req)) => requests.push(req),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        requests,
                        error: Some(e.to_string()),
                    };
                }
            }
        }
    }
    Outcome {
        requests,
        error: None,
    }
}

/// Chunk sizes 1..=64 derived from the input, so each input has its own cut.
fn chunk_sizes(input: &[u8]) -> Vec<usize> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ input.len() as u64;
    for &b in input.iter().take(16) {
        state = (state ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    (0..8)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 64) as usize + 1
        })
        .collect()
}

fn resp_array(args: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let whole = run(input, true, &[input.len()]);

    for req in &whole.requests {
        assert!(!req.is_empty(), "empty request decoded");
        let encoded = resp_array(req);
        let again = run(&encoded, true, &[encoded.len()]);
        assert_eq!(again.error, None);
        assert_eq!(
            &again.requests,
            std::slice::from_ref(req),
            "re-encoded request differs"
        );
    }

    // Past MAX_INLINE_LEN an unterminated line is refused as soon as the
    // buffer holds that much, which depends on how the bytes arrive (as
    // in Redis); below it the cut must not matter.
    if input.len() <= MAX_INLINE_LEN {
        let chunked = run(input, true, &chunk_sizes(input));
        assert_eq!(whole, chunked, "chunked decoding differs");
    }

    // The unauthenticated limits only ever refuse earlier.
    let strict = run(input, false, &[input.len()]);
    assert!(
        whole.requests.starts_with(&strict.requests),
        "unauthenticated decoding produced a request the normal decoder did not"
    );
    if strict.requests.len() < whole.requests.len() {
        assert!(
            strict.error.is_some(),
            "unauthenticated decoding stopped without an error"
        );
    }
});
