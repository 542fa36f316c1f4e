//! CLUSTER: the Redis Cluster view of the key space. A key's hash slot is
//! the top of its ring hash, so `CLUSTER KEYSLOT` answers exactly what
//! redis-server does and a Redis Cluster client routes keys as dynkv
//! places them.

use super::{CmdResult, is};
use crate::resp::reply::Reply;
use bytes::Bytes;

/// Runs a CLUSTER subcommand.
pub fn run(args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    match &args[2..] {
        [key] if is(sub, "KEYSLOT") => Ok(Reply::Int(i64::from(crate::core::key_slot(key)))),
        [] if is(sub, "HELP") => Ok(Reply::Array(
            [
                "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "KEYSLOT <key>",
                "    Return the hash slot for <key>.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::Simple((*l).into()))
            .collect(),
        )),
        _ => Err(Reply::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
            String::from_utf8_lossy(sub)
        ))),
    }
}
