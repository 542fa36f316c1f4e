//! memcached's meta protocol (mg ms md ma mn me): parsing of the command
//! lines and the shape of their replies.
//!
//! A meta command is a key followed by one-letter flags, some with a token
//! (`T30`, `Oabc`). Replies are a two-letter code (`HD`, `VA`, `EN`, `NS`,
//! `EX`, `NF`, `MN`) and the flags asked to be returned, in the order they
//! were asked for, then memcached's `Z`, `X`, `W` (win already handed out,
//! stale, won). mg's `h` and `l` (hit before, last access) are accepted
//! and left out of the reply, as memcached leaves out what it does not
//! know: no node tracks accesses. `u` (do not bump the LRU) holds
//! trivially: there is no LRU.

use super::command::{BAD_FORMAT, Command, Line, MAX_KEY_LEN, number};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One flag: its letter and token (empty when it takes none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// The letter.
    pub letter: u8,
    /// The token after it.
    pub token: Bytes,
}

/// A meta command's flags, in request order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags(pub Vec<Flag>);

impl Flags {
    /// Whether `letter` was given.
    pub fn has(&self, letter: u8) -> bool {
        self.0.iter().any(|f| f.letter == letter)
    }

    /// The token of `letter`, if given.
    pub fn token(&self, letter: u8) -> Option<&Bytes> {
        self.0.iter().find(|f| f.letter == letter).map(|f| &f.token)
    }

    /// The token of `letter` as a number; `Err` when it is not one.
    pub fn number<T: std::str::FromStr>(&self, letter: u8) -> Result<Option<T>, &'static str> {
        match self.token(letter) {
            None => Ok(None),
            Some(t) => number(t).map(Some).ok_or(BAD_TOKEN),
        }
    }
}

/// memcached's reply to a flag token it cannot read.
pub const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format";

/// The meta commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// mg: read.
    Get {
        /// The key (decoded when `b` was given).
        key: Bytes,
        /// Flags.
        flags: Flags,
    },
    /// ms: write (mode `M`: S set, E add, A append, P prepend, R replace).
    Set {
        /// The key.
        key: Bytes,
        /// The data block.
        data: Bytes,
        /// Flags.
        flags: Flags,
    },
    /// md: delete.
    Delete {
        /// The key.
        key: Bytes,
        /// Flags.
        flags: Flags,
    },
    /// ma: arithmetic.
    Arith {
        /// The key.
        key: Bytes,
        /// Flags.
        flags: Flags,
    },
    /// mn: no-op (the end marker of a pipeline of quiet commands).
    Noop,
    /// me: what the server knows about a key.
    Debug {
        /// The key.
        key: Bytes,
    },
}

impl MetaCommand {
    /// The flags, for commands that have them.
    pub fn flags(&self) -> Option<&Flags> {
        match self {
            MetaCommand::Get { flags, .. }
            | MetaCommand::Set { flags, .. }
            | MetaCommand::Delete { flags, .. }
            | MetaCommand::Arith { flags, .. } => Some(flags),
            MetaCommand::Noop | MetaCommand::Debug { .. } => None,
        }
    }

    /// Whether it decides from what it reads (cas compare, add, replace,
    /// append, prepend), so it runs at the key's serialising node.
    pub fn is_conditional(&self) -> bool {
        match self {
            MetaCommand::Set { flags, .. } => {
                flags.has(b'C') || flags.token(b'M').is_some_and(|m| m.as_ref() != b"S")
            }
            MetaCommand::Delete { flags, .. } => flags.has(b'C') || flags.has(b'I'),
            _ => false,
        }
    }

    /// The key, for commands that have one.
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            MetaCommand::Get { key, .. }
            | MetaCommand::Set { key, .. }
            | MetaCommand::Delete { key, .. }
            | MetaCommand::Arith { key, .. }
            | MetaCommand::Debug { key } => Some(key),
            MetaCommand::Noop => None,
        }
    }
}

/// Flags each command accepts.
fn accepted(cmd: &[u8]) -> &'static [u8] {
    match cmd {
        b"mg" => b"bcfhklOqstvTuNRE",
        b"ms" => b"bcCFkOqsTMEIN",
        b"md" => b"bCkOqITE",
        b"ma" => b"bcCNJDTMOqtvkE",
        _ => b"",
    }
}

/// Parses a meta command line (`name` is mg, ms, md, ma, mn or me).
pub fn parse(name: &[u8], args: &[&[u8]]) -> Line {
    if name == b"mn" {
        return Line::Command(Command::Meta(MetaCommand::Noop));
    }
    let Some((&raw_key, rest)) = args.split_first() else {
        return Line::Refused(BAD_FORMAT);
    };
    let (datalen, rest) = if name == b"ms" {
        match rest.split_first() {
            Some((len, rest)) => match number::<usize>(len) {
                Some(len) => (len, rest),
                None => return Line::Refused(BAD_FORMAT),
            },
            None => return Line::Refused(BAD_FORMAT),
        }
    } else {
        (0, rest)
    };
    // Past a readable length memcached throws the data block away with
    // the line (but not after a key too long: that is refused first).
    let refuse = |reply| match name {
        b"ms" => Line::RefusedData {
            bytes: datalen,
            reply,
        },
        _ => Line::Refused(reply),
    };
    let mut flags = Flags::default();
    for token in rest {
        let (&letter, value) = match token.split_first() {
            Some(split) => split,
            None => continue,
        };
        if !letter.is_ascii_alphabetic() || (name != b"me" && !accepted(name).contains(&letter)) {
            return refuse("CLIENT_ERROR invalid flag");
        }
        flags.0.push(Flag {
            letter,
            token: Bytes::copy_from_slice(value),
        });
    }
    let key = if flags.has(b'b') {
        match STANDARD.decode(raw_key) {
            Ok(k) => Bytes::from(k),
            Err(_) => return refuse("CLIENT_ERROR error decoding key"),
        }
    } else {
        Bytes::copy_from_slice(raw_key)
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Line::Refused(BAD_FORMAT);
    }
    let cmd = match name {
        b"mg" => MetaCommand::Get { key, flags },
        b"ms" => {
            return Line::NeedsData {
                bytes: datalen,
                header: Command::Meta(MetaCommand::Set {
                    key,
                    data: Bytes::new(),
                    flags,
                }),
            };
        }
        b"md" => MetaCommand::Delete { key, flags },
        b"ma" => MetaCommand::Arith { key, flags },
        _ => MetaCommand::Debug { key },
    };
    Line::Command(Command::Meta(cmd))
}

/// What a reply may return, for the flags asked to return it.
#[derive(Debug, Default)]
pub struct Returned {
    /// `c`: the cas unique.
    pub cas: Option<u64>,
    /// `f`: client flags.
    pub client_flags: Option<u32>,
    /// `s`: value size.
    pub size: Option<usize>,
    /// `t`: seconds left (-1 = never expires).
    pub ttl: Option<i64>,
    /// `Z`: a client was handed the win before this one asked.
    pub win_sent: bool,
    /// `X`: the item is stale.
    pub stale: bool,
    /// `W`: this client won the right to recache.
    pub won: bool,
}

/// The flags of a reply line (with the leading space), in request order.
pub fn return_flags(key: &Bytes, flags: &Flags, got: &Returned) -> String {
    let mut out = String::new();
    for f in &flags.0 {
        let part = match f.letter {
            b'O' => Some(format!("O{}", String::from_utf8_lossy(&f.token))),
            b'k' if flags.has(b'b') => Some(format!("k{}", STANDARD.encode(key))),
            b'k' => Some(format!("k{}", String::from_utf8_lossy(key))),
            b'b' if flags.has(b'k') => Some("b".to_string()),
            b'c' => got.cas.map(|c| format!("c{c}")),
            b'f' => got.client_flags.map(|v| format!("f{v}")),
            b's' => got.size.map(|v| format!("s{v}")),
            b't' => got.ttl.map(|v| format!("t{v}")),
            _ => None,
        };
        if let Some(part) = part {
            out.push(' ');
            out.push_str(&part);
        }
    }
    // After the asked-for flags, in memcached's order; never W with Z.
    for (set, letter) in [(got.win_sent, " Z"), (got.stale, " X"), (got.won, " W")] {
        if set {
            out.push_str(letter);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(line: &str) -> MetaCommand {
        match super::super::command::parse_line(line.as_bytes()) {
            Line::Command(Command::Meta(m)) => m,
            Line::NeedsData {
                header: Command::Meta(m),
                ..
            } => m,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn flags_keep_their_order_and_tokens() {
        let MetaCommand::Get { key, flags } = meta("mg foo v t Oab12 k") else {
            panic!("not mg");
        };
        assert_eq!(key, Bytes::from("foo"));
        let letters: Vec<u8> = flags.0.iter().map(|f| f.letter).collect();
        assert_eq!(letters, b"vtOk");
        assert_eq!(flags.token(b'O'), Some(&Bytes::from("ab12")));
        let got = Returned {
            ttl: Some(-1),
            ..Returned::default()
        };
        assert_eq!(return_flags(&key, &flags, &got), " t-1 Oab12 kfoo");
    }

    #[test]
    fn win_stale_and_won_follow_the_asked_flags_in_memcacheds_order() {
        let MetaCommand::Get { key, flags } = meta("mg foo s R30 Oa") else {
            panic!("not mg");
        };
        let got = Returned {
            size: Some(2),
            win_sent: true,
            stale: true,
            ..Returned::default()
        };
        assert_eq!(return_flags(&key, &flags, &got), " s2 Oa Z X");
        let won = Returned {
            stale: true,
            won: true,
            ..Returned::default()
        };
        assert_eq!(return_flags(&key, &flags, &won), " Oa X W");
    }

    #[test]
    fn base64_keys_are_decoded_and_returned_encoded() {
        let MetaCommand::Get { key, flags } = meta("mg Zm9v b k v") else {
            panic!("not mg");
        };
        assert_eq!(key, Bytes::from("foo"));
        assert_eq!(return_flags(&key, &flags, &Returned::default()), " b kZm9v");
    }

    #[test]
    fn ms_needs_its_data_and_conditions_are_known() {
        let line = super::super::command::parse_line(b"ms k 3 T10 F5 MA");
        let Line::NeedsData { bytes, header } = line else {
            panic!("{line:?}");
        };
        assert_eq!(bytes, 3);
        let Command::Meta(m) = header else {
            panic!("not meta")
        };
        assert!(m.is_conditional());
        assert!(!meta("ms k 3 T10").is_conditional());
        assert!(meta("md k C123").is_conditional());
    }

    #[test]
    fn refused_flags_and_bad_lines() {
        use super::super::command::parse_line;
        assert_eq!(parse_line(b"mg"), Line::Refused(BAD_FORMAT));
        assert_eq!(parse_line(b"ms k x"), Line::Refused(BAD_FORMAT));
        assert!(matches!(parse_line(b"md k I"), Line::Command(_)));
        assert_eq!(
            parse_line(b"ms k 2 Q"),
            Line::RefusedData {
                bytes: 2,
                reply: "CLIENT_ERROR invalid flag"
            }
        );
        assert!(meta("md k I T30").is_conditional());
        assert_eq!(
            parse_line(b"mg k W"),
            Line::Refused("CLIENT_ERROR invalid flag")
        );
        assert_eq!(
            parse_line(b"md k N5"),
            Line::Refused("CLIENT_ERROR invalid flag")
        );
        assert_eq!(
            parse_line(b"mg k !"),
            Line::Refused("CLIENT_ERROR invalid flag")
        );
        assert_eq!(
            parse_line(b"mg !!! b"),
            Line::Refused("CLIENT_ERROR error decoding key")
        );
    }
}
