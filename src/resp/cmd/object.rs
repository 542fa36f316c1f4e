//! OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP.
//!
//! dynkv keeps no Redis object encodings, access clocks or frequency
//! counters; ENCODING names the encoding Redis would pick for the value
//! (tools and tests branch on it), and the rest answer what Redis answers
//! under its default policy.

use super::strings::read;
use super::{CmdResult, canonical_i64, is, wrong_arity};
use crate::core::crdt::TypedValue;
use crate::kv::{Kv, LiveValue};
use crate::resp::reply::Reply;
use bytes::Bytes;

/// Redis's defaults for its compact encodings.
const EMBSTR_MAX: usize = 44;
const LISTPACK_MAX_ENTRIES: usize = 128;
const LISTPACK_MAX_VALUE: usize = 64;
const INTSET_MAX_ENTRIES: usize = 512;

const HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Print this help.",
];

/// Runs OBJECT.
pub async fn run<K: Kv>(kv: &K, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "HELP") && args.len() == 2 {
        return Ok(Reply::Array(
            HELP.iter().map(|l| Reply::Simple((*l).into())).collect(),
        ));
    }
    let known = ["ENCODING", "REFCOUNT", "IDLETIME", "FREQ"];
    let Some(name) = known.iter().find(|k| is(sub, k)) else {
        return Err(Reply::err(format!(
            "unknown subcommand '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(sub)
        )));
    };
    if args.len() != 3 {
        return Err(wrong_arity(&format!(
            "object|{}",
            name.to_ascii_lowercase()
        )));
    }
    let Some(value) = read(kv, args[2].clone()).await? else {
        return Ok(Reply::Null);
    };
    match *name {
        "ENCODING" => Ok(Reply::bulk(encoding(&value))),
        "REFCOUNT" => Ok(Reply::Int(1)),
        "IDLETIME" => Ok(Reply::Int(0)),
        _ => Err(Reply::err(
            "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        )),
    }
}

/// The encoding Redis would use for `value`.
fn encoding(value: &LiveValue) -> &'static str {
    let small =
        |len: usize, longest: usize| len <= LISTPACK_MAX_ENTRIES && longest <= LISTPACK_MAX_VALUE;
    match &value.typed {
        None | Some(TypedValue::Counter(_)) => {
            if value.data.len() <= 20 && canonical_i64(&value.data).is_some() {
                "int"
            } else if value.data.len() <= EMBSTR_MAX {
                "embstr"
            } else {
                "raw"
            }
        }
        Some(TypedValue::Hash(h)) => {
            let longest = h
                .iter()
                .flat_map(|(f, tags)| {
                    std::iter::once(f.len()).chain(tags.values().map(|v| v.value.len()))
                })
                .max()
                .unwrap_or(0);
            if small(h.len(), longest) {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Some(TypedValue::Set(s)) => {
            if s.len() <= INTSET_MAX_ENTRIES && s.keys().all(|m| canonical_i64(m).is_some()) {
                "intset"
            } else if small(s.len(), s.keys().map(Bytes::len).max().unwrap_or(0)) {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Some(TypedValue::ZSet(z)) => {
            let sorted = z.sorted();
            let longest = sorted.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
            if small(sorted.len(), longest) {
                "listpack"
            } else {
                "skiplist"
            }
        }
        // Redis 7.0 keeps every list as a quicklist.
        Some(TypedValue::List(_)) => "quicklist",
    }
}
