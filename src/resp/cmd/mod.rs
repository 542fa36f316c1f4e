//! Command table and dispatch; one file per command group.
//!
//! Each command takes its arguments and returns a [`Reply`]; none writes to
//! the socket. The table below is also what `COMMAND` reports, so arity
//! checks and client introspection cannot drift apart.

pub mod acl;
pub mod bits;
pub mod cluster;
pub mod connection;
pub mod databases;
pub mod diag;
pub mod docs;
pub mod dynamo;
pub mod hashes;
pub mod keys;
pub mod lists;
pub mod object;
pub mod pubsub;
pub mod rename;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod strings;
pub mod transactions;
pub mod typed;
pub mod zsets;

use super::blocking;
use super::database::InDb;
use super::forward;
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
    spec!("setrange", 4, ["write", "denyoom"], 1, 1, 1, "string", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    spec!("getrange", 4, ["readonly"], 1, 1, 1, "string", "Returns a substring of the string stored at a key."),
    spec!("substr", 4, ["readonly"], 1, 1, 1, "string", "Returns a substring from a string value."),
    spec!("setbit", 4, ["write", "denyoom"], 1, 1, 1, "bitmap", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist."),
    spec!("getbit", 3, ["readonly", "fast"], 1, 1, 1, "bitmap", "Returns a bit value by offset."),
    spec!("bitcount", -2, ["readonly"], 1, 1, 1, "bitmap", "Counts the number of set bits (population counting) in a string."),
    spec!("bitpos", -3, ["readonly"], 1, 1, 1, "bitmap", "Finds the first set (1) or clear (0) bit in a string."),
    spec!("bitop", -4, ["write", "denyoom"], 2, -1, 1, "bitmap", "Performs bitwise operations on multiple strings, and stores the result."),
    spec!("hset", -4, ["write", "denyoom", "fast"], 1, 1, 1, "hash", "Creates or modifies the value of a field in a hash."),
    spec!("hsetnx", 4, ["write", "denyoom", "fast"], 1, 1, 1, "hash", "Sets the value of a field in a hash only when the field doesn't exist."),
    spec!("hget", 3, ["readonly", "fast"], 1, 1, 1, "hash", "Returns the value of a field in a hash."),
    spec!("hmget", -3, ["readonly", "fast"], 1, 1, 1, "hash", "Returns the values of all fields in a hash."),
    spec!("hmset", -4, ["write", "denyoom", "fast"], 1, 1, 1, "hash", "Sets the values of multiple fields."),
    spec!("hdel", -3, ["write", "fast"], 1, 1, 1, "hash", "Deletes one or more fields and their values from a hash (the writes it observed)."),
    spec!("hexists", 3, ["readonly", "fast"], 1, 1, 1, "hash", "Determines whether a field exists in a hash."),
    spec!("hlen", 2, ["readonly", "fast"], 1, 1, 1, "hash", "Returns the number of fields in a hash."),
    spec!("hstrlen", 3, ["readonly", "fast"], 1, 1, 1, "hash", "Returns the length of the value of a field."),
    spec!("hkeys", 2, ["readonly"], 1, 1, 1, "hash", "Returns all fields in a hash."),
    spec!("hvals", 2, ["readonly"], 1, 1, 1, "hash", "Returns all values in a hash."),
    spec!("hgetall", 2, ["readonly"], 1, 1, 1, "hash", "Returns all fields and values in a hash."),
    spec!("hincrby", 4, ["write", "denyoom", "fast"], 1, 1, 1, "hash", "Increments the integer value of a field in a hash by a number."),
    spec!("hincrbyfloat", 4, ["write", "denyoom", "fast"], 1, 1, 1, "hash", "Increments the floating point value of a field by a number."),
    spec!("hrandfield", -2, ["readonly"], 1, 1, 1, "hash", "Returns one or more random fields from a hash."),
    spec!("hscan", -3, ["readonly"], 1, 1, 1, "hash", "Iterates over fields and values of a hash."),
    spec!("sadd", -3, ["write", "denyoom", "fast"], 1, 1, 1, "set", "Adds one or more members to a set."),
    spec!("srem", -3, ["write", "fast"], 1, 1, 1, "set", "Removes one or more members from a set (the adds it observed)."),
    spec!("smembers", 2, ["readonly"], 1, 1, 1, "set", "Returns all members of a set."),
    spec!("sismember", 3, ["readonly", "fast"], 1, 1, 1, "set", "Determines whether a member belongs to a set."),
    spec!("smismember", -3, ["readonly", "fast"], 1, 1, 1, "set", "Determines whether multiple members belong to a set."),
    spec!("scard", 2, ["readonly", "fast"], 1, 1, 1, "set", "Returns the number of members in a set."),
    spec!("spop", -2, ["write", "fast"], 1, 1, 1, "set", "Returns one or more random members from a set after removing them."),
    spec!("srandmember", -2, ["readonly"], 1, 1, 1, "set", "Get one or multiple random members from a set."),
    spec!("smove", 4, ["write", "fast"], 1, 2, 1, "set", "Moves a member from one set to another."),
    spec!("sinter", -2, ["readonly"], 1, -1, 1, "set", "Returns the intersect of multiple sets."),
    spec!("sintercard", -3, ["readonly", "movablekeys"], 0, 0, 0, "set", "Returns the number of members of the intersect of multiple sets."),
    spec!("sinterstore", -3, ["write", "denyoom"], 1, -1, 1, "set", "Stores the intersect of multiple sets in a key."),
    spec!("sunion", -2, ["readonly"], 1, -1, 1, "set", "Returns the union of multiple sets."),
    spec!("sunionstore", -3, ["write", "denyoom"], 1, -1, 1, "set", "Stores the union of multiple sets in a key."),
    spec!("sdiff", -2, ["readonly"], 1, -1, 1, "set", "Returns the difference of multiple sets."),
    spec!("sdiffstore", -3, ["write", "denyoom"], 1, -1, 1, "set", "Stores the difference of multiple sets in a key."),
    spec!("sscan", -3, ["readonly"], 1, 1, 1, "set", "Iterates over members of a set."),
    spec!("zadd", -4, ["write", "denyoom", "fast"], 1, 1, 1, "sorted-set", "Adds one or more members to a sorted set, or updates their scores."),
    spec!("zincrby", 4, ["write", "denyoom", "fast"], 1, 1, 1, "sorted-set", "Increments the score of a member in a sorted set (concurrent increments add up)."),
    spec!("zrem", -3, ["write", "fast"], 1, 1, 1, "sorted-set", "Removes one or more members from a sorted set."),
    spec!("zscore", 3, ["readonly", "fast"], 1, 1, 1, "sorted-set", "Returns the score of a member in a sorted set."),
    spec!("zmscore", -3, ["readonly", "fast"], 1, 1, 1, "sorted-set", "Returns the score of one or more members in a sorted set."),
    spec!("zcard", 2, ["readonly", "fast"], 1, 1, 1, "sorted-set", "Returns the number of members in a sorted set."),
    spec!("zcount", 4, ["readonly", "fast"], 1, 1, 1, "sorted-set", "Returns the count of members in a sorted set that have scores within a range."),
    spec!("zlexcount", 4, ["readonly", "fast"], 1, 1, 1, "sorted-set", "Returns the number of members in a sorted set within a lexicographical range."),
    spec!("zrange", -4, ["readonly"], 1, 1, 1, "sorted-set", "Returns members in a sorted set within a range of indexes, scores or names."),
    spec!("zrangestore", -5, ["write", "denyoom"], 1, 2, 1, "sorted-set", "Stores a range of members from sorted set in a key."),
    spec!("zrangebyscore", -4, ["readonly"], 1, 1, 1, "sorted-set", "Returns members in a sorted set within a range of scores."),
    spec!("zrevrange", -4, ["readonly"], 1, 1, 1, "sorted-set", "Returns members in a sorted set within a range of indexes in reverse order."),
    spec!("zrevrangebyscore", -4, ["readonly"], 1, 1, 1, "sorted-set", "Returns members in a sorted set within a range of scores in reverse order."),
    spec!("zrangebylex", -4, ["readonly"], 1, 1, 1, "sorted-set", "Returns members in a sorted set within a lexicographical range."),
    spec!("zrevrangebylex", -4, ["readonly"], 1, 1, 1, "sorted-set", "Returns members in a sorted set within a lexicographical range in reverse order."),
    spec!("zrank", -3, ["readonly", "fast"], 1, 1, 1, "sorted-set", "Returns the index of a member in a sorted set ordered by ascending scores."),
    spec!("zrevrank", -3, ["readonly", "fast"], 1, 1, 1, "sorted-set", "Returns the index of a member in a sorted set ordered by descending scores."),
    spec!("zpopmin", -2, ["write", "fast"], 1, 1, 1, "sorted-set", "Returns the lowest-scoring members from a sorted set after removing them."),
    spec!("zpopmax", -2, ["write", "fast"], 1, 1, 1, "sorted-set", "Returns the highest-scoring members from a sorted set after removing them."),
    spec!("zrandmember", -2, ["readonly"], 1, 1, 1, "sorted-set", "Returns one or more random members from a sorted set."),
    spec!("zremrangebyscore", 4, ["write"], 1, 1, 1, "sorted-set", "Removes members in a sorted set within a range of scores."),
    spec!("zremrangebyrank", 4, ["write"], 1, 1, 1, "sorted-set", "Removes members in a sorted set within a range of indexes."),
    spec!("zremrangebylex", 4, ["write"], 1, 1, 1, "sorted-set", "Removes members in a sorted set within a lexicographical range."),
    spec!("zunionstore", -4, ["write", "denyoom", "movablekeys"], 1, 1, 1, "sorted-set", "Stores the union of multiple sorted sets in a key."),
    spec!("zinterstore", -4, ["write", "denyoom", "movablekeys"], 1, 1, 1, "sorted-set", "Stores the intersect of multiple sorted sets in a key."),
    spec!("zdiffstore", -4, ["write", "denyoom", "movablekeys"], 1, 1, 1, "sorted-set", "Stores the difference of multiple sorted sets in a key."),
    spec!("zunion", -3, ["readonly", "movablekeys"], 0, 0, 0, "sorted-set", "Returns the union of multiple sorted sets."),
    spec!("zinter", -3, ["readonly", "movablekeys"], 0, 0, 0, "sorted-set", "Returns the intersect of multiple sorted sets."),
    spec!("zdiff", -3, ["readonly", "movablekeys"], 0, 0, 0, "sorted-set", "Returns the difference between multiple sorted sets."),
    spec!("zscan", -3, ["readonly"], 1, 1, 1, "sorted-set", "Iterates over members and scores of a sorted set."),
    spec!("lpush", -3, ["write", "denyoom", "fast"], 1, 1, 1, "list", "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    spec!("rpush", -3, ["write", "denyoom", "fast"], 1, 1, 1, "list", "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    spec!("lpushx", -3, ["write", "denyoom", "fast"], 1, 1, 1, "list", "Prepends one or more elements to a list only when the list exists."),
    spec!("rpushx", -3, ["write", "denyoom", "fast"], 1, 1, 1, "list", "Appends an element to a list only when the list exists."),
    spec!("lpop", -2, ["write", "fast"], 1, 1, 1, "list", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    spec!("rpop", -2, ["write", "fast"], 1, 1, 1, "list", "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    spec!("llen", 2, ["readonly", "fast"], 1, 1, 1, "list", "Returns the length of a list."),
    spec!("lrange", 4, ["readonly"], 1, 1, 1, "list", "Returns a range of elements from a list."),
    spec!("lindex", 3, ["readonly"], 1, 1, 1, "list", "Returns an element from a list by its index."),
    spec!("lset", 4, ["write", "denyoom"], 1, 1, 1, "list", "Sets the value of an element in a list by its index."),
    spec!("linsert", 5, ["write", "denyoom"], 1, 1, 1, "list", "Inserts an element before or after another element in a list."),
    spec!("lrem", 4, ["write"], 1, 1, 1, "list", "Removes elements from a list (the ones it observed). Deletes the list if the last element was removed."),
    spec!("ltrim", 4, ["write"], 1, 1, 1, "list", "Removes elements from both ends a list. Deletes the list if all elements were trimmed."),
    spec!("lpos", -3, ["readonly"], 1, 1, 1, "list", "Returns the index of matching elements in a list."),
    spec!("lmove", 5, ["write", "denyoom"], 1, 2, 1, "list", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."),
    spec!("rpoplpush", 3, ["write", "denyoom"], 1, 2, 1, "list", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped."),
    spec!("lmpop", -4, ["write", "movablekeys"], 0, 0, 0, "list", "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped."),
    spec!("blpop", -3, ["write", "blocking"], 1, -2, 1, "list", "Removes and returns the first element in a list. Blocks until an element is available otherwise (woken by a push through any node)."),
    spec!("brpop", -3, ["write", "blocking"], 1, -2, 1, "list", "Removes and returns the last element in a list. Blocks until an element is available otherwise (woken by a push through any node)."),
    spec!("blmove", 6, ["write", "denyoom", "blocking"], 1, 2, 1, "list", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise."),
    spec!("brpoplpush", 4, ["write", "denyoom", "blocking"], 1, 2, 1, "list", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise."),
    spec!("blmpop", -5, ["write", "blocking", "movablekeys"], 0, 0, 0, "list", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise."),
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
    spec!("rename", 3, ["write"], 1, 2, 1, "generic", "Renames a key and overwrites the destination."),
    spec!("renamenx", 3, ["write", "fast"], 1, 2, 1, "generic", "Renames a key only when the target key name doesn't exist."),
    spec!("copy", -3, ["write", "denyoom"], 1, 2, 1, "generic", "Copies the value of a key to a new key."),
    spec!("move", 3, ["write", "fast"], 1, 1, 1, "generic", "Moves a key to another database."),
    spec!("expiretime", 2, ["readonly", "fast"], 1, 1, 1, "generic", "Returns the expiration time of a key as a Unix timestamp."),
    spec!("pexpiretime", 2, ["readonly", "fast"], 1, 1, 1, "generic", "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    spec!("touch", -2, ["readonly", "fast"], 1, -1, 1, "generic", "Returns the number of existing keys out of those specified."),
    spec!("object", -2, ["readonly"], 2, 2, 1, "generic", "A container for object introspection commands: OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP."),
    spec!("scan", -2, ["readonly"], 0, 0, 0, "generic", "Iterates over the key names in the database."),
    spec!("keys", 2, ["readonly"], 0, 0, 0, "generic", "Returns all key names that match a pattern."),
    spec!("dbsize", 1, ["readonly", "fast"], 0, 0, 0, "server", "Returns the number of keys in the database."),
    spec!("flushdb", -1, ["write"], 0, 0, 0, "server", "Removes all keys from the current database."),
    spec!("flushall", -1, ["write"], 0, 0, 0, "server", "Removes all keys from all databases."),
    spec!("randomkey", 1, ["readonly"], 0, 0, 0, "generic", "Returns a random key name from the database."),
    spec!("ping", -1, ["fast"], 0, 0, 0, "connection", "Returns the server's liveliness response."),
    spec!("echo", 2, ["fast"], 0, 0, 0, "connection", "Returns the given string."),
    spec!("hello", -1, ["noauth", "fast", "noscript"], 0, 0, 0, "connection", "Handshakes with the Redis server."),
    spec!("auth", -2, ["noauth", "fast", "noscript"], 0, 0, 0, "connection", "Authenticates the connection."),
    spec!("select", 2, ["fast"], 0, 0, 0, "connection", "Changes the selected database."),
    spec!("eval", -3, ["noscript", "skip_monitor", "may_replicate", "no_mandatory_keys", "stale", "movablekeys"], 0, 0, 0, "scripting", "Executes a server-side Lua script."),
    spec!("evalsha", -3, ["noscript", "skip_monitor", "may_replicate", "no_mandatory_keys", "stale", "movablekeys"], 0, 0, 0, "scripting", "Executes a server-side Lua script by SHA1 digest."),
    spec!("eval_ro", -3, ["noscript", "skip_monitor", "no_mandatory_keys", "stale", "readonly", "movablekeys"], 0, 0, 0, "scripting", "Executes a read-only server-side Lua script."),
    spec!("evalsha_ro", -3, ["noscript", "skip_monitor", "no_mandatory_keys", "stale", "readonly", "movablekeys"], 0, 0, 0, "scripting", "Executes a read-only server-side Lua script by SHA1 digest."),
    spec!("script", -2, ["noscript"], 0, 0, 0, "scripting", "A container for Lua scripts management commands: SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP."),
    spec!("function", -2, ["noscript"], 0, 0, 0, "scripting", "A container for function commands: FUNCTION LIST | FLUSH | HELP (dynkv has no function libraries)."),
    spec!("subscribe", -2, ["pubsub", "noscript", "loading", "stale"], 0, 0, 0, "pubsub", "Listens for messages published to channels."),
    spec!("unsubscribe", -1, ["pubsub", "noscript", "loading", "stale"], 0, 0, 0, "pubsub", "Stops listening to messages posted to channels."),
    spec!("psubscribe", -2, ["pubsub", "noscript", "loading", "stale"], 0, 0, 0, "pubsub", "Listens for messages published to channels that match one or more patterns."),
    spec!("punsubscribe", -1, ["pubsub", "noscript", "loading", "stale"], 0, 0, 0, "pubsub", "Stops listening to messages published to channels that match one or more patterns."),
    spec!("ssubscribe", -2, ["pubsub", "noscript", "loading", "stale"], 1, -1, 1, "pubsub", "Listens for messages published to shard channels."),
    spec!("sunsubscribe", -1, ["pubsub", "noscript", "loading", "stale"], 1, -1, 1, "pubsub", "Stops listening to messages posted to shard channels."),
    spec!("publish", 3, ["pubsub", "loading", "stale", "fast"], 0, 0, 0, "pubsub", "Posts a message to a channel (delivered to subscribers on every node)."),
    spec!("spublish", 3, ["pubsub", "loading", "stale", "fast"], 1, 1, 1, "pubsub", "Post a message to a shard channel."),
    spec!("pubsub", -2, [], 0, 0, 0, "pubsub", "A container for Pub/Sub commands: PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB | HELP."),
    spec!("multi", 1, ["noscript", "fast"], 0, 0, 0, "transactions", "Starts a transaction."),
    spec!("exec", 1, ["noscript"], 0, 0, 0, "transactions", "Executes all commands in a transaction."),
    spec!("discard", 1, ["noscript", "fast"], 0, 0, 0, "transactions", "Discards a transaction."),
    spec!("watch", -2, ["noscript", "fast"], 1, -1, 1, "transactions", "Monitors changes to keys to determine the execution of a transaction."),
    spec!("unwatch", 1, ["noscript", "fast"], 0, 0, 0, "transactions", "Forgets about watched keys of a transaction."),
    spec!("quit", -1, ["noauth", "fast", "noscript"], 0, 0, 0, "connection", "Closes the connection."),
    spec!("reset", 1, ["noauth", "fast", "noscript"], 0, 0, 0, "connection", "Resets the connection."),
    spec!("client", -2, [], 0, 0, 0, "connection", "A container for client connection commands."),
    spec!("command", -1, [], 0, 0, 0, "server", "Returns detailed information about all commands."),
    spec!("config", -2, ["admin"], 0, 0, 0, "server", "A container for server configuration commands."),
    spec!("acl", -2, [], 0, 0, 0, "server", "Access lists: WHOAMI, LIST, USERS (only the default user exists)."),
    spec!("info", -1, [], 0, 0, 0, "server", "Returns information and statistics about the server."),
    spec!("time", 1, ["fast"], 0, 0, 0, "server", "Returns the server time."),
    spec!("lastsave", 1, ["fast"], 0, 0, 0, "server", "Returns the Unix timestamp of the last successful save to disk."),
    spec!("save", 1, ["admin"], 0, 0, 0, "server", "Synchronously makes everything written durable."),
    spec!("bgsave", -1, ["admin"], 0, 0, 0, "server", "Makes everything written durable."),
    spec!("shutdown", -1, ["admin", "noscript"], 0, 0, 0, "server", "Flushes storage and stops the server."),
    spec!("slowlog", -2, ["admin"], 0, 0, 0, "server", "A container for slow log commands: SLOWLOG GET [count] | LEN | RESET."),
    spec!("latency", -2, ["admin"], 0, 0, 0, "server", "A container for latency diagnostics commands: LATENCY LATEST | HISTORY event | RESET [event ...] | DOCTOR."),
    spec!("memory", -2, ["readonly"], 0, 0, 0, "server", "A container for memory diagnostics commands: MEMORY USAGE key | STATS | DOCTOR."),
    spec!("monitor", 1, ["admin", "noscript"], 0, 0, 0, "server", "Listens for all requests received by the server in real-time."),
    spec!("wait", 3, [], 0, 0, 0, "generic", "Returns the number of replicas a write reaches."),
    spec!("cluster", -2, [], 0, 0, 0, "cluster", "A container for Redis Cluster commands: CLUSTER SLOTS | SHARDS | NODES | INFO | MYID | MYSHARDID | KEYSLOT key | COUNTKEYSINSLOT slot | GETKEYSINSLOT slot count | HELP."),
    spec!("readonly", 1, ["loading", "stale", "fast"], 0, 0, 0, "cluster", "Enables read-only queries for a connection to a Redis Cluster replica node (reads are served by any node)."),
    spec!("readwrite", 1, ["loading", "stale", "fast"], 0, 0, 0, "cluster", "Enables read-write queries for a connection to a Redis Cluster replica node."),
    spec!("asking", 1, ["fast"], 0, 0, 0, "cluster", "Signals that a cluster client is following an -ASK redirect (dynkv never sends one)."),
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
        let refused = unknown_command(&args);
        return refuse_in_transaction(server, session, None, refused);
    };
    let argc = args.len() as i32;
    if (spec.arity > 0 && argc != spec.arity) || (spec.arity < 0 && argc < -spec.arity) {
        return refuse_in_transaction(server, session, Some(idx), wrong_arity(spec.name));
    }
    if !session.authenticated && !spec.flags.contains(&"noauth") {
        return observe::rejected(
            server,
            Some(idx),
            Reply::Error("NOAUTH Authentication required.".into()),
        );
    }
    if session.subscriber.is_some()
        && !session.resp3
        && !pubsub::allowed_while_subscribed(spec.name)
    {
        return observe::rejected(
            server,
            Some(idx),
            Reply::err(format!(
                "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            )),
        );
    }
    if let Some(moved) = cluster::moved(kv, session, spec, &args) {
        return refuse_in_transaction(server, session, Some(idx), moved);
    }
    if let Some(queued) = session.multi.as_mut()
        && !transactions::runs_immediately(spec.name)
    {
        queued.push(idx, args);
        return Reply::Simple("QUEUED".into());
    }
    wait_while_paused(server, spec).await;
    let started = std::time::Instant::now();
    prepare(server, session, spec, &args);
    let reply = if blocking::is_blocking(spec.name) && !session.forwarded {
        Box::pin(blocking::run(kv, server, session, spec, &args)).await
    } else {
        run_once(kv, server, session, spec, &args).await
    };
    observe::finished(server, session, idx, spec, &args, started, &reply);
    reply
}

/// Runs a command once, without blocking: at the node that serialises its
/// key if it is a conditional one (and that node answers), else here.
pub async fn run_once<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> Reply {
    // The rare paths are boxed: EXEC's state holds a whole `execute` of its
    // own, which inline would be carried by every command's future.
    if let Some(node) = forward::serialising_node(kv, session, spec, args)
        && let Some(reply) = Box::pin(forward::run_at(kv, session, node, spec, args.to_vec())).await
    {
        return reply;
    }
    let reply = match spec.name {
        "exec" => Box::pin(transactions::exec(kv, server, session)).await,
        _ => execute_shared(kv, server, session, spec, args).await,
    };
    reply.unwrap_or_else(|e| e)
}

/// Runs a command here, holding the atomic gate shared if it touches
/// data (so it waits only while an EXEC or a script of this node runs).
async fn execute_shared<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> CmdResult {
    let _shared = if touches_data(spec) {
        Some(shared_gate(server).await.ok_or_else(|| {
            Reply::Error(
                "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
                    .into(),
            )
        })?)
    } else {
        None
    };
    execute(kv, server, session, spec, args).await
}

/// Holds a command back while CLIENT PAUSE is in force for it: every data,
/// scripting and publishing command under ALL, the ones that may write
/// under WRITE. Connection and admin commands (CLIENT UNPAUSE among them)
/// always run.
async fn wait_while_paused(server: &ServerState, spec: &CommandSpec) {
    let held_back = |writes_only: bool| {
        let may_write = spec
            .flags
            .iter()
            .any(|f| matches!(*f, "write" | "may_replicate"))
            || spec.name == "publish"
            || spec.name == "spublish";
        let data = touches_data(spec) || matches!(spec.group, "scripting" | "pubsub");
        data && (!writes_only || may_write)
    };
    loop {
        // A pause that has run out is ended by `current_pause`.
        let Some(pause) = server.current_pause() else {
            return;
        };
        if !held_back(pause.writes_only) {
            return;
        }
        let now = std::time::Instant::now();
        // Polled, so CLIENT UNPAUSE releases waiters within a few ms.
        tokio::time::sleep(
            pause
                .until
                .saturating_duration_since(now)
                .min(std::time::Duration::from_millis(10)),
        )
        .await;
    }
}

/// A script running longer than this makes other data commands answer
/// BUSY instead of waiting on (Redis's `busy-reply-threshold` default).
const BUSY_REPLY_THRESHOLD_MS: u128 = 5_000;

/// The atomic gate, shared; `None` once the script holding it exclusively
/// has run past the busy threshold.
async fn shared_gate(server: &ServerState) -> Option<tokio::sync::RwLockReadGuard<'_, ()>> {
    if let Ok(shared) = server.atomic_gate.try_read() {
        return Some(shared);
    }
    let waiting = server.atomic_gate.read();
    tokio::pin!(waiting);
    loop {
        tokio::select! {
            shared = &mut waiting => return Some(shared),
            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {
                if server
                    .running_scripts
                    .busy_ms()
                    .is_some_and(|ms| ms >= BUSY_REPLY_THRESHOLD_MS)
                {
                    return None;
                }
            }
        }
    }
}

/// Whether a command reads or writes keys, and so must not run in the
/// middle of a transaction or a script. Admin, connection and scripting
/// commands pass (SCRIPT KILL must reach a busy script; WAIT may wait long).
fn touches_data(spec: &CommandSpec) -> bool {
    matches!(
        spec.group,
        "string" | "bitmap" | "hash" | "set" | "sorted-set" | "list" | "generic"
    ) && spec.name != "wait"
}

/// A command refused before it runs; inside MULTI it also dooms the
/// transaction, as in Redis.
fn refuse_in_transaction(
    server: &ServerState,
    session: &mut Session,
    idx: Option<usize>,
    reply: Reply,
) -> Reply {
    if let Some(queued) = session.multi.as_mut() {
        queued.abort();
    }
    observe::rejected(server, idx, reply)
}

/// Bookkeeping before a command runs (statistics, MONITOR).
fn prepare(
    server: &ServerState,
    session: &mut Session,
    spec: &'static CommandSpec,
    args: &[Bytes],
) {
    server.stats.record_command();
    session.last_command = spec.name;
    if server.obs.monitors.any() {
        observe::feed_monitors(server, session, spec, args);
    }
}

/// Runs one command EXEC had queued (already checked for arity).
pub async fn run_queued<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    idx: usize,
    args: Vec<Bytes>,
) -> Reply {
    let Some(spec) = COMMANDS.get(idx) else {
        return Reply::err("queued command vanished");
    };
    let started = std::time::Instant::now();
    prepare(server, session, spec, &args);
    let reply = execute(kv, server, session, spec, &args)
        .await
        .unwrap_or_else(|e| e);
    observe::finished(server, session, idx, spec, &args, started, &reply);
    reply
}

/// Runs a command in the connection's database.
async fn execute<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> CmdResult {
    let all = kv;
    let kv = &InDb::new(all, session.db);
    if server.notify.enabled() && spec.flags.contains(&"write") {
        let db = session.db;
        let existed = match spec.name {
            "del" | "unlink" if args.len() > 2 => Some(keys::existing(kv, &args[1..]).await),
            _ => None,
        };
        let result = Box::pin(run_group(kv, all, server, session, spec, args)).await;
        if let Ok(reply) = &result {
            let events =
                super::notify::events_after(kv, server, spec.name, args, reply, existed).await;
            server.notify.emit(server, db, events);
        }
        return result;
    }
    run_group(kv, all, server, session, spec, args).await
}

/// Runs a command in its group's module.
async fn run_group<K: Kv>(
    kv: &InDb<'_, K>,
    all: &K,
    server: &ServerState,
    session: &mut Session,
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> CmdResult {
    match spec.group {
        "string" => strings::run(kv, server, spec.name, args).await,
        "bitmap" => bits::run(kv, server, spec.name, args).await,
        "hash" => hashes::run(kv, spec.name, args).await,
        "set" => sets::run(kv, spec.name, args).await,
        "sorted-set" => zsets::run(kv, spec.name, args).await,
        "list" => lists::run(kv, server, session.db, spec.name, args).await,
        "generic" if spec.name == "wait" => server::run(kv, server, session, spec.name, args).await,
        "generic" if databases::handles(spec.name) => {
            databases::run(all, server, session, spec.name, args).await
        }
        "generic" => keys::run(kv, spec.name, args).await,
        "transactions" => transactions::run(all, session, spec.name, args).await,
        "scripting" => scripting::run(all, server, session, spec.name, args).await,
        "pubsub" => pubsub::run(all, server, session, spec.name, args).await,
        "connection" if spec.name == "select" => {
            databases::run(all, server, session, spec.name, args).await
        }
        "connection" => connection::run(kv, server, session, spec.name, args).await,
        "server" if spec.name == "acl" => acl::run(server, args),
        "server" => server::run(kv, server, session, spec.name, args).await,
        "cluster" if spec.name == "cluster" => cluster::run(kv, session, args).await,
        "cluster" => cluster::connection_flag(session, spec.name),
        "dynamo" => dynamo::run(kv, &server.context_key, spec.name, args).await,
        _ => Err(Reply::err("command group not wired")),
    }
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

/// A blocking command's timeout in seconds (fractions allowed) as Redis
/// parses it; `None` for 0, which waits for ever.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<std::time::Duration>, Reply> {
    let secs = std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|f| f.is_finite())
        .ok_or_else(|| Reply::err("timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(Reply::err("timeout is negative"));
    }
    if secs == 0.0 {
        return Ok(None);
    }
    std::time::Duration::try_from_secs_f64(secs)
        .map(Some)
        .map_err(|_| Reply::err("timeout is out of range"))
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
pub fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}
