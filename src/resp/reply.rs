//! [`Reply`]: what a command answers, independent of the protocol version.
//!
//! Commands build a `Reply`; the connection renders it as RESP2 or RESP3
//! (after `HELLO 3`) through redis-protocol's encoders, so maps, doubles and
//! nulls take the shape each protocol version expects.

use bytes::{Bytes, BytesMut};
use bytes_utils::Str;
use redis_protocol::resp2::types::BytesFrame as Frame2;
use redis_protocol::resp3::types::{BytesFrame as Frame3, FrameMap};

/// A reply to one command (serialisable: a node answering a forwarded
/// command sends it back to the node the client talks to).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Reply {
    /// `+OK`-style status.
    Simple(String),
    /// An error line; the text starts with its code (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// Integer.
    Int(i64),
    /// Binary-safe string.
    Bulk(Bytes),
    /// Nil (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// Nil array (`*-1` in RESP2, `_` in RESP3).
    NullArray,
    /// Array.
    Array(Vec<Reply>),
    /// Map: a flat array in RESP2, `%` in RESP3.
    Map(Vec<(Reply, Reply)>),
    /// Floating point: a bulk string in RESP2, `,` in RESP3.
    Double(f64),
    /// Set: an array in RESP2, `~` in RESP3.
    Set(Vec<Reply>),
    /// Text meant for a person (INFO): bulk in RESP2, verbatim `=txt` in RESP3.
    Verbatim(String),
    /// Member/score pairs (ZRANGE WITHSCORES): a flat array in RESP2, an
    /// array of two-element arrays in RESP3, as Redis 7 answers.
    Pairs(Vec<(Reply, Reply)>),
    /// Out-of-band data (Pub/Sub): `>` in RESP3, an array in RESP2.
    Push(Vec<Reply>),
    /// Several replies to one command, sent one after the other
    /// (SUBSCRIBE a b answers once per channel).
    Several(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Self {
        Reply::Simple("OK".into())
    }

    /// `-ERR <msg>`.
    pub fn err(msg: impl std::fmt::Display) -> Self {
        Reply::Error(format!("ERR {msg}"))
    }

    /// A bulk string from anything byte-like.
    pub fn bulk(data: impl Into<Bytes>) -> Self {
        Reply::Bulk(data.into())
    }

    /// Bulk or nil.
    pub fn bulk_or_null(data: Option<Bytes>) -> Self {
        data.map_or(Reply::Null, Reply::Bulk)
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends this reply to `out` in the connection's protocol.
    pub fn encode(self, out: &mut BytesMut, resp3: bool) {
        if let Reply::Several(replies) = self {
            for reply in replies {
                reply.encode(out, resp3);
            }
            return;
        }
        // Encoding into a growable buffer only fails on frames the builders
        // below never produce; an error here would be a bug, so it is logged.
        let result = if resp3 {
            redis_protocol::resp3::encode::complete::extend_encode(out, &self.into_resp3(), false)
        } else {
            redis_protocol::resp2::encode::extend_encode(out, &self.into_resp2(), false)
        };
        if let Err(e) = result {
            tracing::error!("reply encoding failed: {e:?}");
        }
    }

    fn into_resp2(self) -> Frame2 {
        match self {
            Reply::Simple(s) => Frame2::SimpleString(Bytes::from(one_line(s))),
            Reply::Error(e) => Frame2::Error(Str::from(one_line(e))),
            Reply::Int(i) => Frame2::Integer(i),
            Reply::Bulk(b) => Frame2::BulkString(b),
            Reply::Null => Frame2::Null,
            Reply::NullArray => Frame2::Null,
            Reply::Array(items)
            | Reply::Set(items)
            | Reply::Push(items)
            | Reply::Several(items) => {
                Frame2::Array(items.into_iter().map(Reply::into_resp2).collect())
            }
            Reply::Map(pairs) | Reply::Pairs(pairs) => Frame2::Array(
                pairs
                    .into_iter()
                    .flat_map(|(k, v)| [k.into_resp2(), v.into_resp2()])
                    .collect(),
            ),
            Reply::Double(d) => Frame2::BulkString(Bytes::from(format_double(d))),
            Reply::Verbatim(s) => Frame2::BulkString(Bytes::from(s)),
        }
    }

    fn into_resp3(self) -> Frame3 {
        match self {
            Reply::Simple(s) => Frame3::SimpleString {
                data: Bytes::from(one_line(s)),
                attributes: None,
            },
            Reply::Error(e) => Frame3::SimpleError {
                data: Str::from(one_line(e)),
                attributes: None,
            },
            Reply::Int(i) => Frame3::Number {
                data: i,
                attributes: None,
            },
            Reply::Bulk(b) => Frame3::BlobString {
                data: b,
                attributes: None,
            },
            Reply::Null | Reply::NullArray => Frame3::Null,
            Reply::Array(items) => Frame3::Array {
                data: items.into_iter().map(Reply::into_resp3).collect(),
                attributes: None,
            },
            Reply::Set(items) => Frame3::Set {
                data: items.into_iter().map(Reply::into_resp3).collect(),
                attributes: None,
            },
            Reply::Map(pairs) => {
                let mut map = FrameMap::with_capacity(pairs.len());
                for (k, v) in pairs {
                    map.insert(k.into_resp3(), v.into_resp3());
                }
                Frame3::Map {
                    data: map,
                    attributes: None,
                }
            }
            Reply::Pairs(pairs) => Frame3::Array {
                data: pairs
                    .into_iter()
                    .map(|(k, v)| Frame3::Array {
                        data: vec![k.into_resp3(), v.into_resp3()],
                        attributes: None,
                    })
                    .collect(),
                attributes: None,
            },
            Reply::Double(d) => Frame3::Double {
                data: d,
                attributes: None,
            },
            Reply::Verbatim(s) => Frame3::VerbatimString {
                data: Bytes::from(s),
                format: redis_protocol::resp3::types::VerbatimStringFormat::Text,
                attributes: None,
            },
            Reply::Push(items) => Frame3::Push {
                data: items.into_iter().map(Reply::into_resp3).collect(),
                attributes: None,
            },
            // Only reached nested, where no command puts one.
            Reply::Several(items) => Frame3::Array {
                data: items.into_iter().map(Reply::into_resp3).collect(),
                attributes: None,
            },
        }
    }
}

/// Longest status or error line sent, in bytes (errors that quote client
/// input are the long ones; nobody reads past this).
pub const MAX_LINE: usize = 4096;

/// Makes a status or error text safe to send as one RESP line: a CR or LF
/// inside would end the line early and the rest would be read as the next
/// reply, putting the client out of step with its requests (and letting
/// request data pose as a reply). As Redis does, both become spaces; the
/// text is also cut to [`MAX_LINE`]. Every status and error goes through
/// here, so no command can forget it.
pub fn one_line(text: String) -> String {
    if text.len() <= MAX_LINE && !text.contains(['\r', '\n']) {
        return text;
    }
    let mut end = text.len().min(MAX_LINE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].replace(['\r', '\n'], " ")
}

pub use crate::core::crdt::counter::format_double;

#[cfg(test)]
mod tests {
    use super::*;

    fn render(reply: Reply, resp3: bool) -> String {
        let mut out = BytesMut::new();
        reply.encode(&mut out, resp3);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        assert_eq!(render(Reply::ok(), false), "+OK\r\n");
        assert_eq!(render(Reply::Null, false), "$-1\r\n");
        assert_eq!(render(Reply::Null, true), "_\r\n");
        assert_eq!(render(Reply::err("boom"), false), "-ERR boom\r\n");
        assert_eq!(
            render(Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]), false),
            "*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(
            render(Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]), true),
            "%1\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(render(Reply::Double(1.5), false), "$3\r\n1.5\r\n");
    }

    #[test]
    fn status_and_error_lines_cannot_hold_a_line_break() {
        for resp3 in [false, true] {
            assert_eq!(
                render(Reply::err("a\r\n+INJECTED\nb\r"), resp3),
                "-ERR a  +INJECTED b \r\n"
            );
            assert_eq!(render(Reply::Simple("x\ny".into()), resp3), "+x y\r\n");
        }
        let long = render(Reply::err("é".repeat(5000)), false);
        assert!(long.len() <= MAX_LINE + 3, "{}", long.len());
        assert!(long.ends_with("\r\n") && long.matches("\r\n").count() == 1);
    }

    #[test]
    fn doubles_print_like_redis() {
        assert_eq!(format_double(10.5), "10.5");
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(5.0e3), "5000");
        assert_eq!(format_double(0.1 + 0.2), "0.3");
        assert_eq!(format_double(1.1 + 2.2), "3.3");
        assert_eq!(format_double(-1.5), "-1.5");
    }
}
