//! Lua scripting (EVAL and friends): an embedded Lua 5.1, as Redis embeds.
//!
//! A script runs on a blocking thread with a Lua state of its own; each
//! `redis.call` crosses back to the connection's task over a channel and
//! runs there like a command of a transaction, so scripts reach the store
//! through exactly the code every other command uses. The connection holds
//! the node's atomic gate for the whole script, which makes it atomic with
//! respect to every other command of this node.

mod cache;
mod convert;
mod engine;
mod libs;

pub use cache::{ScriptCache, sha1_hex};
pub use engine::{RunningScript, ScriptCall, ScriptJob, check_compiles, run};

/// What a `#!lua` first line asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScriptFlags {
    /// `flags=no-writes`: the script may only read.
    pub no_writes: bool,
}

/// Splits a `#!lua flags=...` shebang off a script body. The body keeps an
/// empty first line in its place, so error line numbers stay the user's.
pub fn parse_shebang(body: &[u8]) -> Result<(ScriptFlags, Vec<u8>), String> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags::default(), body.to_vec()));
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[2..end]).into_owned();
    let mut words = line.split_whitespace();
    if words.next() != Some("lua") {
        return Err(format!(
            "Could not find engine '{}'",
            line.split_whitespace().next().unwrap_or("")
        ));
    }
    let mut flags = ScriptFlags::default();
    for word in words {
        let Some(list) = word.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {word}"));
        };
        for flag in list.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "no-writes" => flags.no_writes = true,
                "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                other => return Err(format!("Unexpected flag in script shebang: {other}")),
            }
        }
    }
    let mut rest = Vec::with_capacity(body.len() - end + 1);
    rest.extend_from_slice(&body[end..]);
    Ok((flags, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_flags_are_read_and_the_line_kept_blank() {
        let (flags, body) = parse_shebang(b"#!lua flags=no-writes\nreturn 1").expect("parses");
        assert!(flags.no_writes);
        assert_eq!(body, b"\nreturn 1");
        let (flags, body) = parse_shebang(b"return 2").expect("parses");
        assert!(!flags.no_writes);
        assert_eq!(body, b"return 2");
        assert!(parse_shebang(b"#!python\nx").is_err());
        assert!(parse_shebang(b"#!lua flags=bogus\nx").is_err());
    }
}
