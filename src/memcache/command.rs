//! memcached text-protocol commands and the parsing of their command
//! lines, with memcached's own error lines for what it refuses.
//!
//! Pure: no sockets, no store. [`super::codec`] finds the lines and data
//! blocks; this module says what a line means.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// memcached's key length limit.
pub const MAX_KEY_LEN: usize = 250;

/// The storage commands, which differ only in their condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreOp {
    /// Unconditional.
    Set,
    /// Only if absent.
    Add,
    /// Only if present.
    Replace,
    /// Data goes after the present value.
    Append,
    /// Data goes before the present value.
    Prepend,
    /// Only if nothing was written since the client's `gets`.
    Cas,
}

impl StoreOp {
    /// Whether it decides from what it reads, so two racers through
    /// different nodes must be serialised at one node per key.
    pub fn is_conditional(self) -> bool {
        !matches!(self, StoreOp::Set)
    }
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// get / gets / gat / gats.
    Get {
        /// Keys, in request order.
        keys: Vec<Bytes>,
        /// gets / gats: answer with cas uniques.
        with_cas: bool,
        /// gat / gats: the new exptime.
        touch: Option<i64>,
    },
    /// set / add / replace / append / prepend / cas.
    Store {
        /// Which one.
        op: StoreOp,
        /// The key.
        key: Bytes,
        /// Client flags.
        flags: u32,
        /// exptime as the client sent it.
        exptime: i64,
        /// The data block.
        data: Bytes,
        /// cas: the unique the client saw.
        cas: u64,
        /// Send no reply.
        noreply: bool,
    },
    /// delete.
    Delete {
        /// The key.
        key: Bytes,
        /// Send no reply.
        noreply: bool,
    },
    /// incr / decr.
    Arith {
        /// The key.
        key: Bytes,
        /// The amount.
        delta: u64,
        /// incr (true) or decr.
        incr: bool,
        /// Send no reply.
        noreply: bool,
    },
    /// touch.
    Touch {
        /// The key.
        key: Bytes,
        /// New exptime.
        exptime: i64,
        /// Send no reply.
        noreply: bool,
    },
    /// flush_all [delay].
    FlushAll {
        /// Seconds to wait first.
        delay: i64,
        /// Send no reply.
        noreply: bool,
    },
    /// version.
    Version,
    /// verbosity (accepted, changes nothing).
    Verbosity {
        /// Send no reply.
        noreply: bool,
    },
    /// stats [group].
    Stats {
        /// `settings`, `items`, `slabs`, ... (None = general).
        group: Option<String>,
    },
    /// quit.
    Quit,
    /// A meta command (mg ms md ma mn me).
    Meta(super::meta::MetaCommand),
}

impl Command {
    /// The command with the data block read after its line.
    pub fn with_data(self, block: Bytes) -> Command {
        match self {
            Command::Store {
                op,
                key,
                flags,
                exptime,
                cas,
                noreply,
                ..
            } => Command::Store {
                op,
                key,
                flags,
                exptime,
                data: block,
                cas,
                noreply,
            },
            Command::Meta(super::meta::MetaCommand::Set { key, flags, .. }) => {
                Command::Meta(super::meta::MetaCommand::Set {
                    key,
                    data: block,
                    flags,
                })
            }
            other => other,
        }
    }
}

/// What a command line asks for before its data block (if any) is read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete command.
    Command(Command),
    /// A storage command whose `bytes`-long data block follows; `build`
    /// turns the block into the command.
    NeedsData {
        /// Length of the data block (without its `\r\n`).
        bytes: usize,
        /// The command with an empty data block.
        header: Command,
    },
    /// memcached refuses the line with this reply (the connection stays).
    Refused(&'static str),
    /// A refused storage line whose `bytes`-long data block is thrown
    /// away, as memcached does once it could read the length.
    RefusedData {
        /// Length of the data block (without its `\r\n`).
        bytes: usize,
        /// The reply.
        reply: &'static str,
    },
}

/// memcached's reply to an unknown command.
pub const ERROR: &str = "ERROR";
/// memcached's reply to a malformed command line.
pub const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";

/// Parses one command line (without its line ending).
pub fn parse_line(line: &[u8]) -> Line {
    let tokens: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
        .collect();
    let Some((&name, args)) = tokens.split_first() else {
        return Line::Refused(ERROR);
    };
    match name {
        b"get" | b"gets" => get(args, name == b"gets", None),
        b"gat" | b"gats" => match args.split_first() {
            Some((exptime, keys)) => match number::<i64>(exptime) {
                Some(t) => get(keys, name == b"gats", Some(t)),
                None => Line::Refused("CLIENT_ERROR invalid exptime argument"),
            },
            None => Line::Refused(ERROR),
        },
        b"set" => store(StoreOp::Set, args),
        b"add" => store(StoreOp::Add, args),
        b"replace" => store(StoreOp::Replace, args),
        b"append" => store(StoreOp::Append, args),
        b"prepend" => store(StoreOp::Prepend, args),
        b"cas" => store(StoreOp::Cas, args),
        b"delete" => delete(args),
        b"incr" | b"decr" => arith(args, name == b"incr"),
        b"touch" => touch(args),
        b"flush_all" => flush_all(args),
        // memcached ignores whatever follows `version`.
        b"version" => Line::Command(Command::Version),
        b"verbosity" => match args {
            [b"noreply"] => Line::Command(Command::Verbosity { noreply: true }),
            [_] => Line::Command(Command::Verbosity { noreply: false }),
            [_, b"noreply"] => Line::Command(Command::Verbosity { noreply: true }),
            _ => Line::Refused(ERROR),
        },
        b"stats" => Line::Command(Command::Stats {
            group: args
                .first()
                .map(|g| String::from_utf8_lossy(g).into_owned()),
        }),
        b"quit" => Line::Command(Command::Quit),
        b"mg" | b"ms" | b"md" | b"ma" | b"mn" | b"me" => super::meta::parse(name, args),
        _ => Line::Refused(ERROR),
    }
}

/// A decimal number as memcached's `safe_strto*` reads it.
pub fn number<T: std::str::FromStr>(token: &[u8]) -> Option<T> {
    std::str::from_utf8(token).ok()?.parse().ok()
}

fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN
}

fn noreply(rest: &[&[u8]]) -> Option<bool> {
    match rest {
        [] => Some(false),
        [b"noreply"] => Some(true),
        _ => None,
    }
}

fn get(keys: &[&[u8]], with_cas: bool, touch: Option<i64>) -> Line {
    if keys.is_empty() {
        return Line::Refused(ERROR);
    }
    if !keys.iter().all(|k| valid_key(k)) {
        return Line::Refused(BAD_FORMAT);
    }
    Line::Command(Command::Get {
        keys: keys.iter().map(|k| Bytes::copy_from_slice(k)).collect(),
        with_cas,
        touch,
    })
}

fn store(op: StoreOp, args: &[&[u8]]) -> Line {
    let fixed = if op == StoreOp::Cas { 5 } else { 4 };
    if args.len() < fixed {
        return Line::Refused(ERROR);
    }
    let (head, rest) = args.split_at(fixed);
    let parsed = (|| {
        let key = head[0];
        if !valid_key(key) {
            return None;
        }
        let flags = number::<u32>(head[1])?;
        let exptime = number::<i64>(head[2])?;
        let bytes = number::<i64>(head[3])?;
        let bytes = usize::try_from(bytes).ok()?;
        let cas = match op {
            StoreOp::Cas => number::<u64>(head[4])?,
            _ => 0,
        };
        let noreply = noreply(rest)?;
        Some((
            bytes,
            Command::Store {
                op,
                key: Bytes::copy_from_slice(key),
                flags,
                exptime,
                data: Bytes::new(),
                cas,
                noreply,
            },
        ))
    })();
    match parsed {
        Some((bytes, header)) => Line::NeedsData { bytes, header },
        None => Line::Refused(BAD_FORMAT),
    }
}

fn delete(args: &[&[u8]]) -> Line {
    let usage = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
    let Some((&key, rest)) = args.split_first() else {
        return Line::Refused(ERROR);
    };
    if !valid_key(key) {
        return Line::Refused(BAD_FORMAT);
    }
    // memcached still takes the long-gone `delete <key> 0` form.
    let rest = match rest {
        [b"0", tail @ ..] => tail,
        other => other,
    };
    match noreply(rest) {
        Some(noreply) => Line::Command(Command::Delete {
            key: Bytes::copy_from_slice(key),
            noreply,
        }),
        None => Line::Refused(usage),
    }
}

fn arith(args: &[&[u8]], incr: bool) -> Line {
    let [key, delta, rest @ ..] = args else {
        return Line::Refused(ERROR);
    };
    if !valid_key(key) {
        return Line::Refused(BAD_FORMAT);
    }
    let Some(noreply) = noreply(rest) else {
        return Line::Refused(ERROR);
    };
    match number::<u64>(delta) {
        Some(delta) => Line::Command(Command::Arith {
            key: Bytes::copy_from_slice(key),
            delta,
            incr,
            noreply,
        }),
        None => Line::Refused("CLIENT_ERROR invalid numeric delta argument"),
    }
}

fn touch(args: &[&[u8]]) -> Line {
    let [key, exptime, rest @ ..] = args else {
        return Line::Refused(ERROR);
    };
    if !valid_key(key) {
        return Line::Refused(BAD_FORMAT);
    }
    let Some(noreply) = noreply(rest) else {
        return Line::Refused(ERROR);
    };
    match number::<i64>(exptime) {
        Some(exptime) => Line::Command(Command::Touch {
            key: Bytes::copy_from_slice(key),
            exptime,
            noreply,
        }),
        None => Line::Refused("CLIENT_ERROR invalid exptime argument"),
    }
}

fn flush_all(args: &[&[u8]]) -> Line {
    let (delay, rest) = match args.split_first() {
        Some((&first, rest)) if first != b"noreply" => match number::<i64>(first) {
            Some(d) => (d, rest),
            None => return Line::Refused(BAD_FORMAT),
        },
        _ => (0, args),
    };
    match noreply(rest) {
        Some(noreply) => Line::Command(Command::FlushAll { delay, noreply }),
        None => Line::Refused(ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str) -> Command {
        match parse_line(line.as_bytes()) {
            Line::Command(c) => c,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn storage_lines_need_their_data_block() {
        let Line::NeedsData { bytes, header } = parse_line(b"cas k 7 100 3 42 noreply") else {
            panic!("not a storage line");
        };
        assert_eq!(bytes, 3);
        assert_eq!(
            header,
            Command::Store {
                op: StoreOp::Cas,
                key: Bytes::from("k"),
                flags: 7,
                exptime: 100,
                data: Bytes::new(),
                cas: 42,
                noreply: true,
            }
        );
    }

    #[test]
    fn malformed_lines_get_memcached_errors() {
        assert_eq!(parse_line(b""), Line::Refused(ERROR));
        assert_eq!(parse_line(b"bogus"), Line::Refused(ERROR));
        assert_eq!(parse_line(b"set a x 0 3"), Line::Refused(BAD_FORMAT));
        assert_eq!(parse_line(b"set a 0 0 -1"), Line::Refused(BAD_FORMAT));
        assert_eq!(parse_line(b"set a 0 0"), Line::Refused(ERROR));
        let long = format!("get {}", "k".repeat(251));
        assert_eq!(parse_line(long.as_bytes()), Line::Refused(BAD_FORMAT));
        let ok = format!("get {}", "k".repeat(250));
        assert!(matches!(parse_line(ok.as_bytes()), Line::Command(_)));
        assert_eq!(
            parse_line(b"incr a x"),
            Line::Refused("CLIENT_ERROR invalid numeric delta argument")
        );
        assert_eq!(
            parse_line(b"delete a 5"),
            Line::Refused("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]")
        );
        assert_eq!(
            parse_line(b"gat x a"),
            Line::Refused("CLIENT_ERROR invalid exptime argument")
        );
        assert_eq!(parse_line(b"\x80\x01\x00\x00"), Line::Refused(ERROR));
    }

    #[test]
    fn the_other_commands() {
        assert_eq!(
            command("gats 10 a b"),
            Command::Get {
                keys: vec![Bytes::from("a"), Bytes::from("b")],
                with_cas: true,
                touch: Some(10),
            }
        );
        assert_eq!(
            command("delete a 0 noreply"),
            Command::Delete {
                key: Bytes::from("a"),
                noreply: true
            }
        );
        assert_eq!(
            command("flush_all 10"),
            Command::FlushAll {
                delay: 10,
                noreply: false
            }
        );
        assert_eq!(
            command("flush_all noreply"),
            Command::FlushAll {
                delay: 0,
                noreply: true
            }
        );
        assert_eq!(
            command("verbosity 1"),
            Command::Verbosity { noreply: false }
        );
        assert_eq!(parse_line(b"verbosity"), Line::Refused(ERROR));
    }
}
