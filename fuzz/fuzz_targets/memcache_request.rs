//! The memcached text/meta decoder the memcached port uses, on arbitrary
//! bytes.
//!
//! Properties (beyond "no panic"):
//! - feeding the bytes in arbitrary chunks yields the same frames as
//!   feeding them at once (TCP may cut anywhere), as long as no line runs
//!   past the length limit (that refusal depends on how much has arrived);
//! - after a fatal frame the connection closes, so nothing follows it;
//! - every key a command carries is 1 to 250 bytes.
#![no_main]

use bytes::BytesMut;
use dynkv::memcache::codec::{Frame, MAX_LINE, TextCodec};
use dynkv::memcache::command::{Command, MAX_KEY_LEN};
use dynkv::memcache::meta::MetaCommand;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const MAX_ITEM: usize = 1024;

fn run(input: &[u8], chunks: &[usize]) -> Vec<Frame> {
    let mut codec = TextCodec::new(MAX_ITEM);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut sizes = chunks.iter().cycle();
    while fed < input.len() {
        let size = sizes.next().copied().unwrap_or(input.len()).max(1);
        let end = (fed + size).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            let fatal = matches!(frame, Frame::Fatal(_));
            frames.push(frame);
            if fatal {
                return frames;
            }
        }
    }
    frames
}

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

fn keys(cmd: &Command) -> Vec<&[u8]> {
    match cmd {
        Command::Get { keys, .. } => keys.iter().map(|k| k.as_ref()).collect(),
        Command::Store { key, .. }
        | Command::Delete { key, .. }
        | Command::Arith { key, .. }
        | Command::Touch { key, .. } => vec![key.as_ref()],
        Command::Meta(m) => m.key().map(|k| vec![k.as_ref()]).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fuzz_target!(|input: &[u8]| {
    let whole = run(input, &[input.len()]);
    for frame in &whole {
        if let Frame::Command(cmd) = frame {
            for key in keys(cmd) {
                assert!(
                    !key.is_empty() && key.len() <= MAX_KEY_LEN,
                    "key of {} bytes accepted",
                    key.len()
                );
            }
            if let Command::Store { data, .. }
            | Command::Meta(MetaCommand::Set { data, .. }) = cmd
            {
                assert!(data.len() <= MAX_ITEM, "value over the item limit accepted");
            }
        }
    }
    if input.len() <= MAX_LINE {
        assert_eq!(whole, run(input, &chunk_sizes(input)), "chunked decoding differs");
    }
});
