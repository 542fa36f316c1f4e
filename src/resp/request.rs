//! Reading client requests: RESP arrays of bulk strings and inline commands.
//!
//! redis-protocol encodes our replies, but requests are parsed here because
//! the server must (a) accept inline commands (`telnet`, `redis-cli` in some
//! modes), which redis-protocol does not parse, and (b) enforce Redis's limits
//! *before* buffering: a `$1073741824` header must be refused at once, not
//! after a gigabyte has arrived. The decoder is incremental: each argument is
//! split off the buffer as soon as it is complete, so a large request is
//! scanned once.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::config::DEFAULT_PROTO_MAX_BULK_LEN;

/// Longest inline command (and longest `*`/`$` header line), as in Redis.
pub const MAX_INLINE_LEN: usize = 64 * 1024;
/// Most arguments in one request.
pub const MAX_MULTIBULK_LEN: usize = 1024 * 1024;

/// A request the server cannot read; the connection is answered
/// `-ERR Protocol error: <text>` and closed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Malformed or over-limit input.
    #[error("Protocol error: {0}")]
    Protocol(&'static str),
    /// Something other than a bulk string inside a request array.
    #[error("Protocol error: expected '$', got '{0}'")]
    Expected(char),
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Incremental request decoder; yields each request's arguments.
#[derive(Debug)]
pub struct RequestDecoder {
    /// A multibulk request whose header has been read.
    partial: Option<Partial>,
    /// Before AUTH, requests are held to Redis's small unauthenticated
    /// limits so a stranger cannot make the server buffer large frames.
    unauthenticated: bool,
    /// `proto-max-bulk-len`: a longer `$` header is a protocol error.
    max_bulk_len: usize,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        Self {
            partial: None,
            unauthenticated: false,
            max_bulk_len: DEFAULT_PROTO_MAX_BULK_LEN,
        }
    }
}

/// Most arguments a client may send before it has authenticated.
pub const MAX_UNAUTH_MULTIBULK_LEN: i64 = 10;
/// Longest argument a client may send before it has authenticated.
pub const MAX_UNAUTH_BULK_LEN: i64 = 16 * 1024;

impl RequestDecoder {
    /// Applies (or lifts) the unauthenticated limits.
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.unauthenticated = !authenticated;
    }

    /// Sets `proto-max-bulk-len` for bulk headers read from now on (a bulk
    /// whose header was already read keeps the length it was admitted with).
    pub fn set_max_bulk_len(&mut self, bytes: usize) {
        self.max_bulk_len = bytes;
    }
}

#[derive(Debug)]
struct Partial {
    remaining: usize,
    args: Vec<Bytes>,
    /// Length of the bulk whose `$` header has been read, if any.
    bulk_len: Option<usize>,
}

impl Decoder for RequestDecoder {
    type Item = Vec<Bytes>;
    type Error = RequestError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, RequestError> {
        loop {
            if self.partial.is_none() {
                let Some(&first) = buf.first() else {
                    return Ok(None);
                };
                if first != b'*' {
                    match decode_inline(buf)? {
                        // Blank lines are skipped, as Redis does.
                        Some(args) if args.is_empty() => continue,
                        other => return Ok(other),
                    }
                }
                let Some(line) = take_line(buf, "too big mbulk count string")? else {
                    return Ok(None);
                };
                let count = parse_len(&line[1..])
                    .ok_or(RequestError::Protocol("invalid multibulk length"))?;
                if count > MAX_MULTIBULK_LEN as i64 {
                    return Err(RequestError::Protocol("invalid multibulk length"));
                }
                if self.unauthenticated && count > MAX_UNAUTH_MULTIBULK_LEN {
                    return Err(RequestError::Protocol("unauthenticated multibulk length"));
                }
                if count <= 0 {
                    continue;
                }
                let count = count as usize;
                self.partial = Some(Partial {
                    remaining: count,
                    // Capped: the header is only a claim until the data arrives.
                    args: Vec::with_capacity(count.min(1024)),
                    bulk_len: None,
                });
            }
            let Some(partial) = self.partial.as_mut() else {
                continue;
            };
            while partial.remaining > 0 {
                let len = match partial.bulk_len {
                    Some(len) => len,
                    None => {
                        let Some(&first) = buf.first() else {
                            return Ok(None);
                        };
                        if first != b'$' {
                            return Err(RequestError::Expected(first as char));
                        }
                        let Some(line) = take_line(buf, "too big bulk count string")? else {
                            return Ok(None);
                        };
                        let len = parse_len(&line[1..])
                            .filter(|&l| usize::try_from(l).is_ok_and(|l| l <= self.max_bulk_len))
                            .ok_or(RequestError::Protocol("invalid bulk length"))?;
                        if self.unauthenticated && len > MAX_UNAUTH_BULK_LEN {
                            return Err(RequestError::Protocol("unauthenticated bulk length"));
                        }
                        let len = len as usize;
                        partial.bulk_len = Some(len);
                        len
                    }
                };
                if buf.len() < len + 2 {
                    // Ask for the whole bulk at once instead of growing in steps.
                    buf.reserve(len + 2 - buf.len());
                    return Ok(None);
                }
                let data = buf.split_to(len).freeze();
                if &buf[..2] != b"\r\n" {
                    return Err(RequestError::Protocol("bulk string not terminated by CRLF"));
                }
                buf.advance(2);
                partial.args.push(data);
                partial.bulk_len = None;
                partial.remaining -= 1;
            }
            return Ok(self.partial.take().map(|p| p.args));
        }
    }
}

/// Splits one `\r\n`-terminated header line off `buf` (without the CRLF).
fn take_line(buf: &mut BytesMut, too_big: &'static str) -> Result<Option<Bytes>, RequestError> {
    match memchr_newline(buf) {
        Some(pos) => {
            let line = buf.split_to(pos).freeze();
            buf.advance(1);
            let line = match line.last() {
                Some(b'\r') => line.slice(..line.len() - 1),
                _ => line,
            };
            Ok(Some(line))
        }
        None if buf.len() > MAX_INLINE_LEN => Err(RequestError::Protocol(too_big)),
        None => Ok(None),
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

fn parse_len(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn decode_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, RequestError> {
    let Some(line) = take_line(buf, "too big inline request")? else {
        return Ok(None);
    };
    split_inline_args(&line)
        .map(Some)
        .ok_or(RequestError::Protocol("unbalanced quotes in request"))
}

/// Splits an inline command line like Redis's `sdssplitargs`: whitespace
/// separates arguments; `"..."` understands `\n \r \t \b \a \\ \" \xHH`;
/// `'...'` understands `\'`. A closing quote must end the argument. `None`
/// means unbalanced quotes.
pub fn split_inline_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    let &c = line.get(i)?;
                    let escaped_hex = (c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x')
                        .then(|| hex_byte(line[i + 2], line[i + 3]))
                        .flatten();
                    if let Some(byte) = escaped_hex {
                        arg.push(byte);
                        i += 4;
                        continue;
                    }
                    if c == b'\\' && i + 1 < line.len() {
                        arg.push(match line[i + 1] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                        i += 2;
                    } else if c == b'"' {
                        i += 1;
                        if line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                            return None;
                        }
                        break;
                    } else {
                        arg.push(c);
                        i += 1;
                    }
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    let &c = line.get(i)?;
                    if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                        arg.push(b'\'');
                        i += 2;
                    } else if c == b'\'' {
                        i += 1;
                        if line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                            return None;
                        }
                        break;
                    } else {
                        arg.push(c);
                        i += 1;
                    }
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(arg));
    }
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    let h = (hi as char).to_digit(16)?;
    let l = (lo as char).to_digit(16)?;
    Some((h * 16 + l) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, RequestError> {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(req) = dec.decode(&mut buf)? {
            out.push(req);
        }
        Ok(out)
    }

    #[test]
    fn arrays_inline_and_pipelines() {
        let reqs = decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nSET a \"b c\"\n")
            .expect("valid input");
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(reqs[1], vec![Bytes::from("PING")]);
        assert_eq!(reqs[2][2], Bytes::from("b c"));
    }

    #[test]
    fn byte_at_a_time_gives_the_same_request() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = None;
        for &b in input {
            buf.extend_from_slice(&[b]);
            if let Some(req) = dec.decode(&mut buf).expect("valid input") {
                got = Some(req);
            }
        }
        assert_eq!(got.map(|r| r.len()), Some(3));
    }

    #[test]
    fn limits_are_refused_before_buffering() {
        assert!(decode_all(b"*2147483647\r\n").is_err());
        assert!(decode_all(b"*1\r\n$1073741824\r\n").is_err());
        assert!(decode_all(b"*1\r\n+x\r\n").is_err());
        assert!(decode_all(&vec![b'a'; MAX_INLINE_LEN + 1]).is_err());
        assert!(decode_all(b"*1\r\n$3\r\nabcd\r\n").is_err());
    }

    #[test]
    fn bulk_limit_is_the_configured_one_and_inclusive() {
        let limit = 1024 * 1024;
        let mut dec = RequestDecoder::default();
        dec.set_max_bulk_len(limit);
        let mut at_limit = BytesMut::from(format!("*1\r\n${limit}\r\n").as_bytes());
        at_limit.extend_from_slice(&vec![b'x'; limit]);
        at_limit.extend_from_slice(b"\r\n");
        let req = dec.decode(&mut at_limit).expect("at the limit is fine");
        assert_eq!(req.map(|r| r[0].len()), Some(limit));

        let mut over = BytesMut::from(format!("*1\r\n${}\r\n", limit + 1).as_bytes());
        match dec.decode(&mut over) {
            Err(RequestError::Protocol(text)) => assert_eq!(text, "invalid bulk length"),
            other => panic!("expected invalid bulk length, got {other:?}"),
        }
        // The default is dynkv's 32 MiB, not Redis's 512 MB.
        let mut dec = RequestDecoder::default();
        let mut over_default =
            BytesMut::from(format!("*1\r\n${}\r\n", DEFAULT_PROTO_MAX_BULK_LEN + 1).as_bytes());
        assert!(dec.decode(&mut over_default).is_err());
    }

    #[test]
    fn inline_quotes() {
        let args = split_inline_args(br#"set "a\x41\n" 'it\'s'"#).expect("balanced");
        assert_eq!(args[1], Bytes::from("aA\n"));
        assert_eq!(args[2], Bytes::from("it's"));
        assert!(split_inline_args(b"set \"abc").is_none());
        assert!(split_inline_args(b"set \"abc\"x").is_none());
    }
}
