//! Command table and dispatch; one file per command group.
//!
//! Each command takes its arguments and returns a [`Reply`]; none writes to
//! the socket. The table below is also what `COMMAND` reports, so arity
//! checks and client introspection cannot drift apart.

pub mod acl;
pub mod cluster;
pub mod connection;
pub mod diag;
pub mod docs;
pub mod dynamo;
pub mod keys;
pub mod server;
pub mod strings;

use super::observe;
use super::reply::Reply;
use super::session::{ServerState, Session};
use crate::kv::{Kv, KvError};
use bytes::Bytes;

/// Static facts about a command (Redis's `COMMAND INFO` shape).
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    /// `write`, `readonly`, `fast`, ...
    pub flags: &'static [&'static str],
    /// First key position (0 = none).
    pub first_key: i32,
    /// Last key position (-1 = last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// `string`, `generic`, `connection`, `server`, `dynamo`.
    pub group: &'static str,
    /// One line for COMMAND DOCS.
    pub summary: &'static str,
}

macro_rules! spec {
    ($name:literal, $arity:expr, [$($flag:literal),*], $first:expr, $last:expr, $step:expr, $group:literal, $summary:literal) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: &[$($flag),*],
            first_key: $first,
            last_key: $last,
            step: $step,
            group: $group,
            summary: $summary,
        }
    };
}

/// Every command dynkv understands.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    spec!("get", 2, ["readonly", "fast"], 1, 1, 1, "string", "Returns the string value of a key."),
    spec!("set", -3, ["write", "denyoom"], 1, 1, 1, "string", "Sets the string value of a key, ignoring its type."),
    spec!("setnx", 3, ["write", "denyoom", "fast"], 1, 1, 1, "string", "Set the string value of a key only when the key doesn't exist."),
    spec!("setex", 4, ["write", "denyoom"], 1, 1, 1, "string", "Sets the string value and expiration time of a key."),
    spec!("psetex", 4, ["write", "denyoom"], 1, 1, 1, "string", "Sets both string value and expiration time in milliseconds of a key."),
    spec!("getset", 3, ["write", "denyoom", "fast"], 1, 1, 1, "string", "Returns the previous string value of a key after setting it to a new value."),
    spec!("getdel", 2, ["write", "fast"], 1, 1, 1, "string", "Returns the string value of a key after deleting the key."),
    spec!("getex", -2, ["write", "fast"], 1, 1, 1, "string", "Returns the string value of a key after setting its expiration time."),
    spec!("mget", -2, ["readonly", "fast"], 1, -1, 1, "string", "Atomically returns the string values of one or more keys."),
    spec!("mset", -3, ["write", "denyoom"], 1, -1, 2, "string", "Sets the string values of one or more keys."),
    spec!("msetnx", -3, ["write", "denyoom"], 1, -1, 2, "string", "Sets the string values of one or more keys only when all keys don't exist."),
    spec!("strlen", 2, ["readonly", "fast"], 1, 1, 1, "string", "Returns the length of a string value."),
    spec!("append", 3, ["write", "denyoom", "fast"], 1, 1, 1, "string", "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    spec!("incr", 2, ["write", "denyoom", "fast"], 1, 1, 1, "string", "Increments the integer value of a key by one."),
    spec!("decr", 2, ["write", "denyoom", "fast"], 1, 1, 1, "string", "Decrements the integer value of a key by one."),
    spec!("incrby", 3, ["write", "denyoom", "fast"], 1, 1, 1, "string", "Increments the integer value of a key by a number."),
    spec!("decrby", 3, ["write", "denyoom", "fast"], 1, 1, 1, "string", "Decrements a number from the integer value of a key."),
    spec!("incrbyfloat", 3, ["write", "denyoom", "fast"], 1, 1, 1, "string", "Increment the floating point value of a key by a number."),
    spec!("del", -2, ["write"], 1, -1, 1, "generic", "Deletes one or more keys (versioned tombstones)."),
    spec!("unlink", -2, ["write", "fast"], 1, -1, 1, "generic", "Deletes one or more keys (versioned tombstones)."),
    spec!("exists", -2, ["readonly", "fast"], 1, -1, 1, "generic", "Determines whether one or more keys exist."),
    spec!("type", 2, ["readonly", "fast"], 1, 1, 1, "generic", "Determines the type of value stored at a key."),
    spec!("expire", -3, ["write", "fast"], 1, 1, 1, "generic", "Sets the expiration time of a key in seconds."),
    spec!("pexpire", -3, ["write", "fast"], 1, 1, 1, "generic", "Sets the expiration time of a key in milliseconds."),
    spec!("expireat", -3, ["write", "fast"], 1, 1, 1, "generic", "Sets the expiration time of a key to a Unix timestamp."),
    spec!("pexpireat", -3, ["write", "fast"], 1, 1, 1, "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    spec!("ttl", 2, ["readonly", "fast"], 1, 1, 1, "generic", "Returns the expiration time in seconds of a key."),
    spec!("pttl", 2, ["readonly", "fast"], 1, 1, 1, "generic", "Returns the expiration time in milliseconds of a key."),
    spec!("persist", 2, ["write", "fast"], 1, 1, 1, "generic", "Removes the expiration time of a key."),
    spec!("scan", -2, ["readonly"], 0, 0, 0, "generic", "Iterates over the key names in the database."),
    spec!("keys", 2, ["readonly"], 0, 0, 0, "generic", "Returns all key names that match a pattern."),
    spec!("dbsize", 1, ["readonly", "fast"], 0, 0, 0, "server", "Returns the number of keys in the database."),
    spec!("flushdb", -1, ["write"], 0, 0, 0, "server", "Removes all keys from the current database."),
    spec!("flushall", -1, ["write"], 0, 0, 0, "server", "Removes all keys from all databases."),
    spec!("randomkey", 1, ["readonly"], 0, 0, 0, "generic", "Returns a random key name from the database."),
    spec!("ping", -1, ["fast"], 0, 0, 0, "connection", "Returns the server's liveliness response."),
    spec!("echo", 2, ["fast"], 0, 0, 0, "connection", "Returns the given string."),
    spec!("hello", -1, ["noauth", "fast"], 0, 0, 0, "connection", "Handshakes with the Redis server."),
    spec!("auth", -2, ["noauth", "fast"], 0, 0, 0, "connection", "Authenticates the connection."),
    spec!("select", 2, ["fast"], 0, 0, 0, "connection", "Changes the selected database (only 0 exists)."),
    spec!("quit", -1, ["noauth", "fast"], 0, 0, 0, "connection", "Closes the connection."),
    spec!("reset", 1, ["noauth", "fast"], 0, 0, 0, "connection", "Resets the connection."),
    spec!("client", -2, [], 0, 0, 0, "connection", "A container for client connection commands."),
    spec!("command", -1, [], 0, 0, 0, "server", "Returns detailed information about all commands."),
    spec!("config", -2, ["admin"], 0, 0, 0, "server", "A container for server configuration commands."),
    spec!("acl", -2, [], 0, 0, 0, "server", "Access lists: WHOAMI, LIST, USERS (only the default user exists)."),
    spec!("info", -1, [], 0, 0, 0, "server", "Returns information and statistics about the server."),
    spec!("time", 1, ["fast"], 0, 0, 0, "server", "Returns the server time."),
    spec!("lastsave", 1, ["fast"], 0, 0, 0, "server", "Returns the Unix timestamp of the last successful save to disk."),
    spec!("save", 1, ["admin"], 0, 0, 0, "server", "Synchronously makes everything written durable."),
    spec!("bgsave", -1, ["admin"], 0, 0, 0, "server", "Makes everything written durable."),
    spec!("shutdown", -1, ["admin"], 0, 0, 0, "server", "Flushes storage and stops the server."),
    spec!("slowlog", -2, ["admin"], 0, 0, 0, "server", "A container for slow log commands: SLOWLOG GET [count] | LEN | RESET."),
    spec!("latency", -2, ["admin"], 0, 0, 0, "server", "A container for latency diagnostics commands: LATENCY LATEST | HISTORY event | RESET [event ...] | DOCTOR."),
    spec!("memory", -2, ["readonly"], 0, 0, 0, "server", "A container for memory diagnostics commands: MEMORY USAGE key | STATS | DOCTOR."),
    spec!("monitor", 1, ["admin"], 0, 0, 0, "server", "Listens for all requests received by the server in real-time."),
    spec!("wait", 3, [], 0, 0, 0, "generic", "Returns the number of replicas a write reaches."),
    spec!("cluster", -2, [], 0, 0, 0, "cluster", "A container for Redis Cluster commands: CLUSTER KEYSLOT key | HELP."),
    spec!("dyn.get", -2, ["readonly"], 1, 1, 1, "dynamo", "All concurrent versions of a key and their context: DYN.GET key [R n]."),
    spec!("dyn.put", -4, ["write", "denyoom"], 1, 1, 1, "dynamo", "Writes a value superseding the versions in the context: DYN.PUT key context value [W n]."),
    spec!("dyn.del", -3, ["write"], 1, 1, 1, "dynamo", "Deletes the versions in the context: DYN.DEL key context [W n]."),
    spec!("dyn.members", 1, [], 0, 0, 0, "dynamo", "Cluster members: name, address, status, partitions owned."),
    spec!("dyn.ring", 1, [], 0, 0, 0, "dynamo", "Partition -> preference list."),
    spec!("dyn.join", 2, [], 0, 0, 0, "dynamo", "Asks the member at host:clusterport to admit this node."),
    spec!("dyn.leave", -1, [], 0, 0, 0, "dynamo", "Hands off data, then leaves the cluster."),
    spec!("dyn.hints", 1, [], 0, 0, 0, "dynamo", "Pending hints per target node."),
    spec!("dyn.debug", -2, [], 0, 0, 0, "dynamo", "Debugging: DYN.DEBUG LOCAL key | PARTITION ... | MERKLE partition|ALL"),
];

/// Looks a command up by (case-insensitive) name.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    lookup_indexed(name).map(|(_, spec)| spec)
}

/// Looks a command up and says where it is in [`COMMANDS`] (the index of
/// its statistics and metric handles).
pub fn lookup_indexed(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    COMMANDS
        .iter()
        .enumerate()
        .find(|(_, c)| c.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Runs one request.
pub async fn dispatch<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    args: Vec<Bytes>,
) -> Reply {
    let Some(name) = args.first() else {
        return Reply::err("empty command");
    };
    let Some((idx, spec)) = lookup_indexed(name) else {
        return observe::rejected(server, None, unknown_command(&args));
    };
    let argc = args.len() as i32;
    if (spec.arity > 0 && argc != spec.arity) || (spec.arity < 0 && argc < -spec.arity) {
        return observe::rejected(server, Some(idx), wrong_arity(spec.name));
    }
    if !session.authenticated && !spec.flags.contains(&"noauth") {
        return observe::rejected(
            server,
            Some(idx),
            Reply::Error("NOAUTH Authentication required.".into()),
        );
    }
    server.stats.record_command();
    session.last_command = spec.name;
    if server.obs.monitors.any() {
        observe::feed_monitors(server, session, spec, &args);
    }
    let started = std::time::Instant::now();
    let reply = match spec.group {
        "string" => strings::run(kv, server, spec.name, &args).await,
        "generic" if spec.name == "wait" => {
            server::run(kv, server, session, spec.name, &args).await
        }
        "generic" => keys::run(kv, spec.name, &args).await,
        "connection" => connection::run(kv, server, session, spec.name, &args).await,
        "server" if spec.name == "acl" => acl::run(server, &args),
        "server" => server::run(kv, server, session, spec.name, &args).await,
        "cluster" => cluster::run(&args),
        "dynamo" => dynamo::run(kv, &server.context_key, spec.name, &args).await,
        _ => Err(Reply::err("command group not wired")),
    };
    let reply = reply.unwrap_or_else(|e| e);
    observe::finished(server, session, idx, spec, &args, started, &reply);
    reply
}

/// `-ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
/// As in Redis, the name and the quoted arguments are cut to 128 bytes
/// each (line breaks in them are blanked when the reply is encoded).
fn unknown_command(args: &[Bytes]) -> Reply {
    const QUOTED_MAX: usize = 128;
    let mut quoted = String::new();
    for arg in &args[1..] {
        if quoted.len() >= QUOTED_MAX {
            break;
        }
        let room = QUOTED_MAX - quoted.len();
        quoted.push_str(&format!("'{}' ", truncated(arg, room)));
    }
    Reply::err(format!(
        "unknown command '{}', with args beginning with: {quoted}",
        truncated(&args[0], QUOTED_MAX)
    ))
}

fn truncated(arg: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(max)]).into_owned()
}

/// `-ERR wrong number of arguments for 'get' command`.
pub fn wrong_arity(name: &str) -> Reply {
    Reply::err(format!("wrong number of arguments for '{name}' command"))
}

/// `-ERR syntax error`.
pub fn syntax_error() -> Reply {
    Reply::err("syntax error")
}

/// A command result: the reply, or an error reply (both are sent).
pub type CmdResult = Result<Reply, Reply>;

/// Turns a store failure into its error reply.
pub fn kv_error(e: KvError) -> Reply {
    Reply::Error(e.to_string())
}

/// Parses an integer argument the way Redis does.
pub fn parse_i64(arg: &[u8]) -> Result<i64, Reply> {
    canonical_i64(arg).ok_or_else(|| Reply::err("value is not an integer or out of range"))
}

/// Redis's `string2ll`: only the canonical spelling of an integer is one
/// (no `+`, no spaces, no leading zeros, no `-0`), so INCR never rewrites
/// a value the user wrote differently.
pub fn canonical_i64(arg: &[u8]) -> Option<i64> {
    let digits = arg.strip_prefix(b"-").unwrap_or(arg);
    let canonical = match digits {
        [] => false,
        [b'0'] => digits.len() == arg.len(),
        [first, ..] => (b'1'..=b'9').contains(first) && digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// Parses a float argument the way Redis does.
pub fn parse_f64(arg: &[u8]) -> Result<f64, Reply> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|s| !s.is_empty() && !s.starts_with(char::is_whitespace))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|f| !f.is_nan())
        .ok_or_else(|| Reply::err("value is not a valid float"))
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
pub fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}
