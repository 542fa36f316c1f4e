//! Framing of the text protocol: a command line, and for storage commands
//! the data block after it, as a `tokio_util` decoder.
//!
//! memcached's recoveries are kept: a refused line costs only that line
//! (the data block after a malformed `set` line is then read as a command
//! and answered `ERROR`, as memcached does); a value over the item size
//! limit is read and thrown away after `SERVER_ERROR object too large for
//! cache`; a data block not ended by `\r\n` is `CLIENT_ERROR bad data
//! chunk`. Only a line longer than any command could be closes the
//! connection.

use super::command::{Command, Line, parse_line};
use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// The longest command line accepted: room for a multi-get of thousands of
/// 250-byte keys, far beyond what a client sends in one line.
pub const MAX_LINE: usize = 2 * 1024 * 1024;

/// What the decoder hands the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A command to run.
    Command(Command),
    /// An error line to send; the connection carries on.
    Refused(&'static str),
    /// An error line to send before closing the connection.
    Fatal(&'static str),
}

/// The decoder.
#[derive(Debug)]
pub struct TextCodec {
    max_item: usize,
    /// Bytes of a refused oversized value still to be thrown away.
    swallow: usize,
}

impl TextCodec {
    /// A decoder refusing values over `max_item` bytes.
    pub fn new(max_item: usize) -> Self {
        Self {
            max_item,
            swallow: 0,
        }
    }

    /// Throws away a `bytes`-long data block and its line ending: what is
    /// buffered now, the rest as it arrives.
    fn swallow_block(&mut self, buf: &mut BytesMut, bytes: usize) {
        let block = bytes.saturating_add(2);
        let now = block.min(buf.len());
        buf.advance(now);
        self.swallow = block - now;
    }
}

impl Decoder for TextCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if self.swallow > 0 {
            let n = self.swallow.min(buf.len());
            buf.advance(n);
            self.swallow -= n;
            if self.swallow > 0 {
                return Ok(None);
            }
        }
        let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > MAX_LINE {
                return Ok(Some(Frame::Fatal("CLIENT_ERROR line too long")));
            }
            return Ok(None);
        };
        let line_end = if newline > 0 && buf[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        };
        let line_len = newline + 1;
        match parse_line(&buf[..line_end]) {
            Line::Command(c) => {
                buf.advance(line_len);
                Ok(Some(Frame::Command(c)))
            }
            Line::Refused(reply) => {
                buf.advance(line_len);
                Ok(Some(Frame::Refused(reply)))
            }
            Line::RefusedData { bytes, reply } => {
                buf.advance(line_len);
                self.swallow_block(buf, bytes);
                Ok(Some(Frame::Refused(reply)))
            }
            Line::NeedsData { bytes, header } => {
                let block = bytes.saturating_add(2);
                if bytes > self.max_item {
                    buf.advance(line_len);
                    self.swallow_block(buf, bytes);
                    return Ok(Some(Frame::Refused(
                        "SERVER_ERROR object too large for cache",
                    )));
                }
                let total = line_len + block;
                if buf.len() < total {
                    buf.reserve(total - buf.len());
                    return Ok(None);
                }
                buf.advance(line_len);
                let mut block = buf.split_to(block);
                if !block.ends_with(b"\r\n") {
                    return Ok(Some(Frame::Refused("CLIENT_ERROR bad data chunk")));
                }
                block.truncate(bytes);
                Ok(Some(Frame::Command(header.with_data(block.freeze()))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memcache::command::StoreOp;
    use crate::memcache::meta::MetaCommand;
    use bytes::Bytes;

    fn frames(codec: &mut TextCodec, input: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf).expect("decode") {
            out.push(f);
        }
        out
    }

    fn stored(key: &str, data: &str) -> Frame {
        Frame::Command(Command::Store {
            op: StoreOp::Set,
            key: Bytes::from(key.to_string()),
            flags: 0,
            exptime: 0,
            data: Bytes::from(data.to_string()),
            cas: 0,
            noreply: false,
        })
    }

    #[test]
    fn data_blocks_are_framed_and_checked() {
        let mut c = TextCodec::new(16);
        assert_eq!(
            frames(&mut c, b"set a 0 0 3\r\nabc\r\nset b 0 0 0\r\n\r\n"),
            vec![stored("a", "abc"), stored("b", "")]
        );
        // Short by one byte, then bad chunk: the leftover newline is an
        // empty command line, as memcached answers it.
        assert_eq!(
            frames(&mut c, b"set a 0 0 3\r\nabcd\r\n"),
            vec![
                Frame::Refused("CLIENT_ERROR bad data chunk"),
                Frame::Refused("ERROR")
            ]
        );
    }

    #[test]
    fn an_oversized_value_is_thrown_away_and_the_next_command_runs() {
        let mut c = TextCodec::new(4);
        let mut buf = BytesMut::from(&b"set big 0 0 10\r\n01234"[..]);
        assert_eq!(
            c.decode(&mut buf).expect("decode"),
            Some(Frame::Refused("SERVER_ERROR object too large for cache"))
        );
        assert_eq!(c.decode(&mut buf).expect("decode"), None);
        buf.extend_from_slice(b"56789\r\nset a 0 0 1\r\nx\r\n");
        assert_eq!(c.decode(&mut buf).expect("decode"), Some(stored("a", "x")));
    }

    #[test]
    fn a_meta_set_refused_for_a_flag_loses_its_data_block() {
        let mut codec = TextCodec::new(1024);
        let frames = frames(&mut codec, b"ms k 2 Q\r\nab\r\nmn\r\n");
        assert_eq!(
            frames,
            vec![
                Frame::Refused("CLIENT_ERROR invalid flag"),
                Frame::Command(Command::Meta(MetaCommand::Noop)),
            ]
        );
    }

    #[test]
    fn an_incomplete_block_waits_for_the_rest() {
        let mut c = TextCodec::new(16);
        let mut buf = BytesMut::from(&b"set a 0 0 3\r\nab"[..]);
        assert_eq!(c.decode(&mut buf).expect("decode"), None);
        buf.extend_from_slice(b"c\r\n");
        assert_eq!(
            c.decode(&mut buf).expect("decode"),
            Some(stored("a", "abc"))
        );
    }

    #[test]
    fn an_endless_line_closes_the_connection() {
        let mut c = TextCodec::new(16);
        let mut buf = BytesMut::from(&vec![b'x'; MAX_LINE + 1][..]);
        assert_eq!(
            c.decode(&mut buf).expect("decode"),
            Some(Frame::Fatal("CLIENT_ERROR line too long"))
        );
    }
}
