//! Every supported Redis command, through redis-rs (and a raw RESP client
//! where byte-exact replies matter), checked against Redis 7 semantics and
//! error texts. Run with `DYNKV_TEST_AGAINST=redis` to check the
//! expectations themselves against a real `redis-server`.

mod common;

use common::{Reply, Server, cmd, err_text, is_real_redis, query_err};
use redis::{Connection, Value};
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// Runs a command and converts its reply; panics on an error reply.
fn q<T: redis::FromRedisValue>(c: &mut Connection, args: &[&str]) -> T {
    match cmd(args).query::<T>(c) {
        Ok(v) => v,
        Err(e) => panic!("{args:?} failed: {}", err_text(&e)),
    }
}

/// Runs a command and returns the raw reply value.
fn v(c: &mut Connection, args: &[&str]) -> Value {
    q::<Value>(c, args)
}

/// Runs a command that must fail; returns the error text.
fn e(c: &mut Connection, args: &[&str]) -> String {
    query_err(c, &cmd(args))
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn assert_between(what: &str, x: i64, lo: i64, hi: i64) {
    assert!(
        (lo..=hi).contains(&x),
        "{what}: expected {lo}..={hi}, got {x}"
    );
}

/// The version of the server under test as reported by INFO server, e.g.
/// (7, 0). dynkv is expected to implement the 7.2 client handshake
/// commands, so this returns at least (7, 2) for it.
fn server_version(c: &mut Connection) -> (u32, u32) {
    if !is_real_redis() {
        return (99, 0);
    }
    let info: String = q(c, &["INFO", "server"]);
    let line = info
        .lines()
        .find(|l| l.starts_with("redis_version:"))
        .expect("redis_version line");
    let mut parts = line["redis_version:".len()..].split('.');
    let major = parts.next().unwrap().trim().parse().unwrap();
    let minor = parts.next().unwrap().trim().parse().unwrap();
    (major, minor)
}

const SYNTAX: &str = "ERR syntax error";
const NOT_INT: &str = "ERR value is not an integer or out of range";
const NOT_FLOAT: &str = "ERR value is not a valid float";
const OVERFLOW: &str = "ERR increment or decrement would overflow";

// ---------------------------------------------------------------------------
// GET / SET
// ---------------------------------------------------------------------------

#[test]
fn get_and_set_basic() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["GET", "k"]), Value::Nil);
    assert_eq!(v(&mut c, &["SET", "k", "v1"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("v1"));
    assert_eq!(v(&mut c, &["SET", "k", "v2"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("v2"));
    // Empty value is a value, not a deletion.
    assert_eq!(v(&mut c, &["SET", "empty", ""]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "empty"]), bulk(""));
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "empty"]), 1);
    // Wrong arity.
    assert_eq!(
        e(&mut c, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        e(&mut c, &["GET", "a", "b"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        e(&mut c, &["SET", "k"]),
        "ERR wrong number of arguments for 'set' command"
    );
}

/// Keys past the storage engine's 64 KiB key limit (and two that differ
/// only in their last byte) behave like any other key, and writes go on
/// working after them.
#[test]
fn keys_of_any_length() {
    let s = Server::start();
    let mut c = s.conn();
    let long = "k".repeat(100_000);
    let twin = format!("{}j", "k".repeat(99_999));
    assert_eq!(v(&mut c, &["SET", &long, "a"]), Value::Okay);
    assert_eq!(v(&mut c, &["SET", &twin, "b"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", &long]), bulk("a"));
    assert_eq!(v(&mut c, &["GET", &twin]), bulk("b"));
    assert_eq!(q::<i64>(&mut c, &["APPEND", &long, "x"]), 2);
    let (_, mut keys): (u64, Vec<String>) = q(&mut c, &["SCAN", "0", "COUNT", "1000"]);
    keys.sort();
    assert_eq!(keys, vec![twin.clone(), long.clone()]);
    assert_eq!(q::<i64>(&mut c, &["DEL", &long, &twin]), 2);
    assert_eq!(v(&mut c, &["GET", &long]), Value::Nil);
    assert_eq!(v(&mut c, &["SET", "after", "ok"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "after"]), bulk("ok"));
}

#[test]
fn set_expiry_options() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["SET", "ex", "v", "EX", "100"]), Value::Okay);
    assert_between("TTL after EX 100", q(&mut c, &["TTL", "ex"]), 98, 100);
    assert_eq!(v(&mut c, &["SET", "px", "v", "PX", "100000"]), Value::Okay);
    assert_between(
        "PTTL after PX 100000",
        q(&mut c, &["PTTL", "px"]),
        98_000,
        100_000,
    );
    let at = (now_secs() + 200).to_string();
    assert_eq!(v(&mut c, &["SET", "exat", "v", "EXAT", &at]), Value::Okay);
    assert_between("TTL after EXAT +200", q(&mut c, &["TTL", "exat"]), 197, 200);
    let pat = (now_ms() + 300_000).to_string();
    assert_eq!(v(&mut c, &["SET", "pxat", "v", "PXAT", &pat]), Value::Okay);
    assert_between(
        "PTTL after PXAT +300000",
        q(&mut c, &["PTTL", "pxat"]),
        297_000,
        300_000,
    );
    // Options are case-insensitive.
    assert_eq!(v(&mut c, &["SET", "lc", "v", "ex", "50"]), Value::Okay);
    assert_between("TTL after ex 50", q(&mut c, &["TTL", "lc"]), 48, 50);
    // A plain SET clears the TTL.
    assert_eq!(v(&mut c, &["SET", "ex", "v2"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["TTL", "ex"]), -1);
    // KEEPTTL keeps it.
    assert_eq!(v(&mut c, &["SET", "px", "v2", "KEEPTTL"]), Value::Okay);
    assert_between(
        "PTTL after KEEPTTL",
        q(&mut c, &["PTTL", "px"]),
        90_000,
        100_000,
    );
    assert_eq!(v(&mut c, &["GET", "px"]), bulk("v2"));
    // KEEPTTL on a key without TTL.
    assert_eq!(v(&mut c, &["SET", "nottl", "a", "KEEPTTL"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["TTL", "nottl"]), -1);
}

#[test]
fn set_nx_xx_get() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["SET", "k", "1", "XX"]), Value::Nil);
    assert_eq!(v(&mut c, &["GET", "k"]), Value::Nil);
    assert_eq!(v(&mut c, &["SET", "k", "1", "NX"]), Value::Okay);
    assert_eq!(v(&mut c, &["SET", "k", "2", "NX"]), Value::Nil);
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("1"));
    assert_eq!(v(&mut c, &["SET", "k", "3", "XX"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("3"));
    // GET returns the old value.
    assert_eq!(v(&mut c, &["SET", "k", "4", "GET"]), bulk("3"));
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("4"));
    assert_eq!(v(&mut c, &["SET", "new", "x", "GET"]), Value::Nil);
    assert_eq!(v(&mut c, &["GET", "new"]), bulk("x"));
    // NX GET (allowed since 7.0): returns the old value, does not set.
    assert_eq!(v(&mut c, &["SET", "k", "5", "NX", "GET"]), bulk("4"));
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("4"));
    assert_eq!(v(&mut c, &["SET", "nx2", "5", "NX", "GET"]), Value::Nil);
    assert_eq!(v(&mut c, &["GET", "nx2"]), bulk("5"));
    // XX GET on a missing key: nil, not set.
    assert_eq!(v(&mut c, &["SET", "xx2", "5", "XX", "GET"]), Value::Nil);
    assert_eq!(v(&mut c, &["EXISTS", "xx2"]), Value::Int(0));
    // GET with EX.
    assert_eq!(v(&mut c, &["SET", "k", "6", "GET", "EX", "100"]), bulk("4"));
    assert_between("TTL", q(&mut c, &["TTL", "k"]), 98, 100);
}

#[test]
fn set_option_errors() {
    let s = Server::start();
    let mut c = s.conn();
    for args in [
        &["SET", "k", "v", "NX", "XX"][..],
        &["SET", "k", "v", "XX", "NX"],
        &["SET", "k", "v", "EX", "10", "PX", "100"],
        &["SET", "k", "v", "EX", "10", "EXAT", "100"],
        &["SET", "k", "v", "PX", "10", "PXAT", "100"],
        &["SET", "k", "v", "EX", "10", "KEEPTTL"],
        &["SET", "k", "v", "KEEPTTL", "PX", "10"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "PX"],
        &["SET", "k", "v", "FOO"],
    ] {
        assert_eq!(e(&mut c, args), SYNTAX, "{args:?}");
    }
    // Repeating the same option is accepted; the last one wins.
    assert_eq!(
        v(&mut c, &["SET", "rep", "v", "EX", "10", "EX", "200"]),
        Value::Okay
    );
    assert_between(
        "TTL after EX 10 EX 200",
        q(&mut c, &["TTL", "rep"]),
        198,
        200,
    );
    for args in [
        &["SET", "k", "v", "EX", "0"][..],
        &["SET", "k", "v", "EX", "-1"],
        &["SET", "k", "v", "PX", "0"],
        &["SET", "k", "v", "PX", "-5"],
        &["SET", "k", "v", "EXAT", "0"],
        &["SET", "k", "v", "PXAT", "0"],
        &["SET", "k", "v", "EX", "9223372036854775807"],
    ] {
        assert_eq!(
            e(&mut c, args),
            "ERR invalid expire time in 'set' command",
            "{args:?}"
        );
    }
    for args in [
        &["SET", "k", "v", "EX", "abc"][..],
        &["SET", "k", "v", "PX", "1.5"],
        &["SET", "k", "v", "EX", "99999999999999999999"],
    ] {
        assert_eq!(e(&mut c, args), NOT_INT, "{args:?}");
    }
    // Nothing was written by the failed commands.
    assert_eq!(v(&mut c, &["EXISTS", "k"]), Value::Int(0));
}

#[test]
fn setnx_setex_psetex() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["SETNX", "k", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SETNX", "k", "b"]), 0);
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("a"));

    assert_eq!(v(&mut c, &["SETEX", "se", "100", "v"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "se"]), bulk("v"));
    assert_between("TTL after SETEX", q(&mut c, &["TTL", "se"]), 98, 100);
    assert_eq!(
        e(&mut c, &["SETEX", "se", "0", "v"]),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        e(&mut c, &["SETEX", "se", "-10", "v"]),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(e(&mut c, &["SETEX", "se", "abc", "v"]), NOT_INT);
    assert_eq!(
        e(&mut c, &["SETEX", "se", "10"]),
        "ERR wrong number of arguments for 'setex' command"
    );

    assert_eq!(v(&mut c, &["PSETEX", "pse", "100000", "v"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "pse"]), bulk("v"));
    assert_between(
        "PTTL after PSETEX",
        q(&mut c, &["PTTL", "pse"]),
        98_000,
        100_000,
    );
    assert_eq!(
        e(&mut c, &["PSETEX", "pse", "0", "v"]),
        "ERR invalid expire time in 'psetex' command"
    );
    assert_eq!(e(&mut c, &["PSETEX", "pse", "x", "v"]), NOT_INT);
    // The failed SETEX/PSETEX left the old values alone.
    assert_eq!(v(&mut c, &["GET", "se"]), bulk("v"));
    assert_eq!(v(&mut c, &["GET", "pse"]), bulk("v"));
}

#[test]
fn getset_getdel() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["GETSET", "k", "a"]), Value::Nil);
    assert_eq!(v(&mut c, &["GETSET", "k", "b"]), bulk("a"));
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("b"));
    // GETSET clears the TTL.
    assert_eq!(v(&mut c, &["SET", "t", "a", "EX", "100"]), Value::Okay);
    assert_eq!(v(&mut c, &["GETSET", "t", "b"]), bulk("a"));
    assert_eq!(q::<i64>(&mut c, &["TTL", "t"]), -1);

    assert_eq!(v(&mut c, &["GETDEL", "k"]), bulk("b"));
    assert_eq!(v(&mut c, &["GET", "k"]), Value::Nil);
    assert_eq!(v(&mut c, &["GETDEL", "k"]), Value::Nil);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k"]), 0);
    assert_eq!(
        e(&mut c, &["GETDEL", "a", "b"]),
        "ERR wrong number of arguments for 'getdel' command"
    );
}

#[test]
fn getex_options() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["GETEX", "missing"]), Value::Nil);
    assert_eq!(v(&mut c, &["GETEX", "missing", "EX", "10"]), Value::Nil);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "missing"]), 0);
    assert_eq!(v(&mut c, &["SET", "k", "v"]), Value::Okay);
    assert_eq!(v(&mut c, &["GETEX", "k"]), bulk("v"));
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
    assert_eq!(v(&mut c, &["GETEX", "k", "EX", "100"]), bulk("v"));
    assert_between("TTL after GETEX EX", q(&mut c, &["TTL", "k"]), 98, 100);
    // No option: TTL untouched.
    assert_eq!(v(&mut c, &["GETEX", "k"]), bulk("v"));
    assert_between("TTL after bare GETEX", q(&mut c, &["TTL", "k"]), 98, 100);
    assert_eq!(v(&mut c, &["GETEX", "k", "PX", "200000"]), bulk("v"));
    assert_between(
        "PTTL after GETEX PX",
        q(&mut c, &["PTTL", "k"]),
        198_000,
        200_000,
    );
    let at = (now_secs() + 300).to_string();
    assert_eq!(v(&mut c, &["GETEX", "k", "EXAT", &at]), bulk("v"));
    assert_between("TTL after GETEX EXAT", q(&mut c, &["TTL", "k"]), 297, 300);
    let pat = (now_ms() + 400_000).to_string();
    assert_eq!(v(&mut c, &["GETEX", "k", "PXAT", &pat]), bulk("v"));
    assert_between(
        "PTTL after GETEX PXAT",
        q(&mut c, &["PTTL", "k"]),
        397_000,
        400_000,
    );
    assert_eq!(v(&mut c, &["GETEX", "k", "PERSIST"]), bulk("v"));
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
    assert_eq!(
        e(&mut c, &["GETEX", "k", "EX", "0"]),
        "ERR invalid expire time in 'getex' command"
    );
    assert_eq!(
        e(&mut c, &["GETEX", "k", "PX", "-1"]),
        "ERR invalid expire time in 'getex' command"
    );
    assert_eq!(e(&mut c, &["GETEX", "k", "EX", "x"]), NOT_INT);
    assert_eq!(e(&mut c, &["GETEX", "k", "EX", "10", "PERSIST"]), SYNTAX);
    assert_eq!(e(&mut c, &["GETEX", "k", "EX", "10", "PX", "10"]), SYNTAX);
    assert_eq!(e(&mut c, &["GETEX", "k", "FOO"]), SYNTAX);
    assert_eq!(e(&mut c, &["GETEX", "k", "EX"]), SYNTAX);
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
}

// ---------------------------------------------------------------------------
// multi-key
// ---------------------------------------------------------------------------

#[test]
fn mget_mset_msetnx() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["MSET", "a", "1", "b", "2"]), Value::Okay);
    assert_eq!(
        v(&mut c, &["MGET", "a", "b", "missing", "a"]),
        Value::Array(vec![bulk("1"), bulk("2"), Value::Nil, bulk("1")])
    );
    assert_eq!(
        e(&mut c, &["MSET", "a"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        e(&mut c, &["MSET", "a", "1", "b"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        e(&mut c, &["MGET"]),
        "ERR wrong number of arguments for 'mget' command"
    );
    // Later duplicates win.
    assert_eq!(v(&mut c, &["MSET", "d", "x", "d", "y"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "d"]), bulk("y"));
    // MSET clears TTLs.
    assert_eq!(v(&mut c, &["SET", "t", "v", "EX", "100"]), Value::Okay);
    assert_eq!(v(&mut c, &["MSET", "t", "w"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["TTL", "t"]), -1);

    assert_eq!(q::<i64>(&mut c, &["MSETNX", "c", "3", "a", "9"]), 0);
    assert_eq!(v(&mut c, &["GET", "c"]), Value::Nil);
    assert_eq!(v(&mut c, &["GET", "a"]), bulk("1"));
    assert_eq!(q::<i64>(&mut c, &["MSETNX", "c", "3", "e", "4"]), 1);
    assert_eq!(
        v(&mut c, &["MGET", "c", "e"]),
        Value::Array(vec![bulk("3"), bulk("4")])
    );
    assert_eq!(
        e(&mut c, &["MSETNX", "c"]),
        "ERR wrong number of arguments for 'msetnx' command"
    );
}

#[test]
fn del_unlink_exists() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(
        v(&mut c, &["MSET", "a", "1", "b", "2", "c", "3"]),
        Value::Okay
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "a", "a", "a", "missing"]), 3);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "a", "b", "c"]), 3);
    assert_eq!(q::<i64>(&mut c, &["DEL", "a", "b", "missing"]), 2);
    assert_eq!(q::<i64>(&mut c, &["DEL", "a"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "a", "b", "c"]), 1);
    assert_eq!(v(&mut c, &["GET", "a"]), Value::Nil);
    assert_eq!(q::<i64>(&mut c, &["UNLINK", "c", "c", "missing"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "c"]), 0);
    // A deleted key can be written again.
    assert_eq!(v(&mut c, &["SET", "a", "again"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "a"]), bulk("again"));
    assert_eq!(q::<i64>(&mut c, &["TTL", "a"]), -1);
    assert_eq!(
        e(&mut c, &["DEL"]),
        "ERR wrong number of arguments for 'del' command"
    );
    assert_eq!(
        e(&mut c, &["EXISTS"]),
        "ERR wrong number of arguments for 'exists' command"
    );
    assert_eq!(
        e(&mut c, &["UNLINK"]),
        "ERR wrong number of arguments for 'unlink' command"
    );
}

#[test]
fn type_strlen_append() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(
        v(&mut c, &["TYPE", "k"]),
        Value::SimpleString("none".into())
    );
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "k"]), 0);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "k", "Hello"]), 5);
    assert_eq!(
        v(&mut c, &["TYPE", "k"]),
        Value::SimpleString("string".into())
    );
    assert_eq!(q::<i64>(&mut c, &["APPEND", "k", " World"]), 11);
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("Hello World"));
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "k"]), 11);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "k", ""]), 11);
    // APPEND keeps the TTL.
    assert_eq!(v(&mut c, &["SET", "t", "a", "EX", "100"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "t", "b"]), 2);
    assert_between("TTL after APPEND", q(&mut c, &["TTL", "t"]), 98, 100);
    // Integers are strings too.
    assert_eq!(v(&mut c, &["SET", "n", "12345"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "n"]), 5);
    assert_eq!(q::<i64>(&mut c, &["INCR", "n"]), 12346);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "n", "7"]), 6);
    assert_eq!(v(&mut c, &["GET", "n"]), bulk("123467"));
    assert_eq!(
        v(&mut c, &["TYPE", "n"]),
        Value::SimpleString("string".into())
    );
    assert_eq!(
        e(&mut c, &["STRLEN"]),
        "ERR wrong number of arguments for 'strlen' command"
    );
    assert_eq!(
        e(&mut c, &["APPEND", "k"]),
        "ERR wrong number of arguments for 'append' command"
    );
}

// ---------------------------------------------------------------------------
// counters
// ---------------------------------------------------------------------------

#[test]
fn incr_decr_family() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["INCR", "n"]), 1);
    assert_eq!(q::<i64>(&mut c, &["INCR", "n"]), 2);
    assert_eq!(q::<i64>(&mut c, &["INCRBY", "n", "10"]), 12);
    assert_eq!(q::<i64>(&mut c, &["INCRBY", "n", "-20"]), -8);
    assert_eq!(q::<i64>(&mut c, &["DECR", "n"]), -9);
    assert_eq!(q::<i64>(&mut c, &["DECRBY", "n", "3"]), -12);
    assert_eq!(q::<i64>(&mut c, &["DECRBY", "n", "-12"]), 0);
    assert_eq!(v(&mut c, &["GET", "n"]), bulk("0"));
    assert_eq!(q::<i64>(&mut c, &["DECR", "fresh"]), -1);
    assert_eq!(q::<i64>(&mut c, &["INCRBY", "fresh2", "5"]), 5);
    assert_eq!(q::<i64>(&mut c, &["DECRBY", "fresh3", "5"]), -5);
    // INCR keeps the TTL.
    assert_eq!(v(&mut c, &["SET", "t", "5", "EX", "100"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["INCR", "t"]), 6);
    assert_between("TTL after INCR", q(&mut c, &["TTL", "t"]), 98, 100);
    // Leading zeros / plus signs / spaces are not integers.
    for bad in [
        "abc", "1.5", " 1", "1 ", "", "+1", "01", "0x10", "1e3", "-0", "00", "-01",
    ] {
        assert_eq!(v(&mut c, &["SET", "bad", bad]), Value::Okay);
        assert_eq!(e(&mut c, &["INCR", "bad"]), NOT_INT, "INCR on {bad:?}");
        assert_eq!(e(&mut c, &["DECR", "bad"]), NOT_INT, "DECR on {bad:?}");
        assert_eq!(v(&mut c, &["GET", "bad"]), bulk(bad));
    }
    assert_eq!(e(&mut c, &["INCRBY", "n", "abc"]), NOT_INT);
    assert_eq!(e(&mut c, &["INCRBY", "n", "1.0"]), NOT_INT);
    assert_eq!(e(&mut c, &["DECRBY", "n", "x"]), NOT_INT);
    assert_eq!(e(&mut c, &["INCRBY", "n", "9223372036854775808"]), NOT_INT);
    // Overflow.
    assert_eq!(
        v(&mut c, &["SET", "max", "9223372036854775807"]),
        Value::Okay
    );
    assert_eq!(e(&mut c, &["INCR", "max"]), OVERFLOW);
    assert_eq!(e(&mut c, &["INCRBY", "max", "1"]), OVERFLOW);
    assert_eq!(e(&mut c, &["DECRBY", "max", "-1"]), OVERFLOW);
    assert_eq!(v(&mut c, &["GET", "max"]), bulk("9223372036854775807"));
    assert_eq!(
        v(&mut c, &["SET", "min", "-9223372036854775808"]),
        Value::Okay
    );
    assert_eq!(e(&mut c, &["DECR", "min"]), OVERFLOW);
    assert_eq!(e(&mut c, &["INCRBY", "min", "-1"]), OVERFLOW);
    assert_eq!(
        q::<i64>(&mut c, &["INCRBY", "min", "9223372036854775807"]),
        -1
    );
    assert_eq!(
        e(&mut c, &["DECRBY", "n", "-9223372036854775808"]),
        "ERR decrement would overflow"
    );
    assert_eq!(
        e(&mut c, &["INCR"]),
        "ERR wrong number of arguments for 'incr' command"
    );
    assert_eq!(
        e(&mut c, &["INCRBY", "n"]),
        "ERR wrong number of arguments for 'incrby' command"
    );
}

#[test]
fn incrbyfloat() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["INCRBYFLOAT", "f", "10.5"]), bulk("10.5"));
    assert_eq!(v(&mut c, &["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
    assert_eq!(v(&mut c, &["INCRBYFLOAT", "f", "-5"]), bulk("5.6"));
    assert_eq!(v(&mut c, &["GET", "f"]), bulk("5.6"));
    assert_eq!(v(&mut c, &["SET", "e", "5.0e3"]), Value::Okay);
    assert_eq!(v(&mut c, &["INCRBYFLOAT", "e", "2.0e2"]), bulk("5200"));
    assert_eq!(v(&mut c, &["SET", "i", "1"]), Value::Okay);
    assert_eq!(v(&mut c, &["INCRBYFLOAT", "i", "3.0"]), bulk("4"));
    assert_eq!(v(&mut c, &["INCRBYFLOAT", "i", "-4"]), bulk("0"));
    // The result is stored as a string: INCR works on an integral result.
    assert_eq!(q::<i64>(&mut c, &["INCR", "i"]), 1);
    assert_eq!(e(&mut c, &["INCRBYFLOAT", "f", "abc"]), NOT_FLOAT);
    assert_eq!(e(&mut c, &["INCRBYFLOAT", "f", ""]), NOT_FLOAT);
    assert_eq!(v(&mut c, &["SET", "s", "abc"]), Value::Okay);
    assert_eq!(e(&mut c, &["INCRBYFLOAT", "s", "1"]), NOT_FLOAT);
    assert_eq!(
        e(&mut c, &["INCRBYFLOAT", "f", "inf"]),
        "ERR increment would produce NaN or Infinity"
    );
    assert_eq!(
        e(&mut c, &["INCRBYFLOAT", "f", "-inf"]),
        "ERR increment would produce NaN or Infinity"
    );
    assert_eq!(e(&mut c, &["INCRBYFLOAT", "f", "nan"]), NOT_FLOAT);
    assert_eq!(v(&mut c, &["GET", "f"]), bulk("5.6"));
    // Keeps the TTL.
    assert_eq!(v(&mut c, &["SET", "t", "1", "EX", "100"]), Value::Okay);
    assert_eq!(v(&mut c, &["INCRBYFLOAT", "t", "0.5"]), bulk("1.5"));
    assert_between("TTL after INCRBYFLOAT", q(&mut c, &["TTL", "t"]), 98, 100);
    assert_eq!(
        e(&mut c, &["INCRBYFLOAT", "f"]),
        "ERR wrong number of arguments for 'incrbyfloat' command"
    );
}

// ---------------------------------------------------------------------------
// expiry
// ---------------------------------------------------------------------------

#[test]
fn expire_family() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "missing", "100"]), 0);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "missing", "100"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIREAT", "missing", "2000000000"]), 0);
    assert_eq!(
        q::<i64>(&mut c, &["PEXPIREAT", "missing", "2000000000000"]),
        0
    );
    assert_eq!(q::<i64>(&mut c, &["TTL", "missing"]), -2);
    assert_eq!(q::<i64>(&mut c, &["PTTL", "missing"]), -2);

    assert_eq!(v(&mut c, &["SET", "k", "v"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
    assert_eq!(q::<i64>(&mut c, &["PTTL", "k"]), -1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "100"]), 1);
    assert_between("TTL", q(&mut c, &["TTL", "k"]), 98, 100);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "k", "200000"]), 1);
    assert_between("PTTL", q(&mut c, &["PTTL", "k"]), 198_000, 200_000);
    let at = (now_secs() + 300).to_string();
    assert_eq!(q::<i64>(&mut c, &["EXPIREAT", "k", &at]), 1);
    assert_between("TTL after EXPIREAT", q(&mut c, &["TTL", "k"]), 297, 300);
    let pat = (now_ms() + 400_000).to_string();
    assert_eq!(q::<i64>(&mut c, &["PEXPIREAT", "k", &pat]), 1);
    assert_between(
        "PTTL after PEXPIREAT",
        q(&mut c, &["PTTL", "k"]),
        397_000,
        400_000,
    );
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("v"));

    // PERSIST
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "k"]), 1);
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "k"]), 0);
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "missing"]), 0);

    // Expire in the past (or now) deletes.
    assert_eq!(v(&mut c, &["SET", "neg", "v"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "neg", "-1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "neg"]), 0);
    assert_eq!(v(&mut c, &["SET", "zero", "v"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "zero", "0"]), 1);
    assert_eq!(v(&mut c, &["GET", "zero"]), Value::Nil);
    assert_eq!(v(&mut c, &["SET", "past", "v"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["EXPIREAT", "past", "1000"]), 1);
    assert_eq!(q::<i64>(&mut c, &["TTL", "past"]), -2);
    assert_eq!(v(&mut c, &["SET", "past2", "v"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["PEXPIREAT", "past2", "1000"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "past2"]), 0);

    // Errors.
    assert_eq!(e(&mut c, &["EXPIRE", "k", "abc"]), NOT_INT);
    assert_eq!(e(&mut c, &["PEXPIRE", "k", "1.5"]), NOT_INT);
    assert_eq!(
        e(&mut c, &["EXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(
        e(&mut c, &["PEXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'pexpire' command"
    );
    assert_eq!(
        e(&mut c, &["EXPIRE", "k"]),
        "ERR wrong number of arguments for 'expire' command"
    );
    assert_eq!(
        e(&mut c, &["TTL"]),
        "ERR wrong number of arguments for 'ttl' command"
    );
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
}

#[test]
fn expire_nx_xx_gt_lt() {
    let s = Server::start();
    let mut c = s.conn();
    // k has a TTL of 100.
    assert_eq!(v(&mut c, &["SET", "k", "v", "EX", "100"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "200", "NX"]), 0);
    assert_between("TTL", q(&mut c, &["TTL", "k"]), 98, 100);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "200", "XX"]), 1);
    assert_between("TTL", q(&mut c, &["TTL", "k"]), 198, 200);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "100", "GT"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "300", "GT"]), 1);
    assert_between("TTL", q(&mut c, &["TTL", "k"]), 298, 300);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "500", "LT"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "50", "LT"]), 1);
    assert_between("TTL", q(&mut c, &["TTL", "k"]), 48, 50);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "60", "xx", "gt"]), 1);
    assert_between("TTL", q(&mut c, &["TTL", "k"]), 58, 60);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "k", "1000", "GT"]), 0);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "k", "40000", "LT"]), 1);
    let at = (now_secs() + 1000).to_string();
    assert_eq!(q::<i64>(&mut c, &["EXPIREAT", "k", &at, "LT"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIREAT", "k", &at, "GT"]), 1);
    let pat = (now_ms() + 2_000_000).to_string();
    assert_eq!(q::<i64>(&mut c, &["PEXPIREAT", "k", &pat, "NX"]), 0);
    assert_eq!(q::<i64>(&mut c, &["PEXPIREAT", "k", &pat, "XX"]), 1);
    assert_between("TTL", q(&mut c, &["TTL", "k"]), 1997, 2000);

    // p has no TTL: counts as infinite for GT/LT.
    assert_eq!(v(&mut c, &["SET", "p", "v"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "100", "XX"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "100", "GT"]), 0);
    assert_eq!(q::<i64>(&mut c, &["TTL", "p"]), -1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "100", "LT"]), 1);
    assert_between("TTL", q(&mut c, &["TTL", "p"]), 98, 100);
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "p"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "100", "NX"]), 1);
    assert_between("TTL", q(&mut c, &["TTL", "p"]), 98, 100);
    // Options on a missing key.
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "missing", "100", "NX"]), 0);

    let incompatible = "ERR NX and XX, GT or LT options at the same time are not compatible";
    assert_eq!(e(&mut c, &["EXPIRE", "k", "10", "NX", "XX"]), incompatible);
    assert_eq!(e(&mut c, &["EXPIRE", "k", "10", "NX", "GT"]), incompatible);
    assert_eq!(e(&mut c, &["PEXPIRE", "k", "10", "LT", "NX"]), incompatible);
    assert_eq!(
        e(&mut c, &["EXPIRE", "k", "10", "GT", "LT"]),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        e(&mut c, &["EXPIRE", "k", "10", "FOO"]),
        "ERR Unsupported option FOO"
    );
    assert_between("TTL unchanged", q(&mut c, &["TTL", "k"]), 1990, 2000);
}

#[test]
fn expired_keys_are_hidden() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["SET", "exp", "v", "PX", "50"]), Value::Okay);
    assert_eq!(v(&mut c, &["SET", "exp2", "v"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "exp2", "50"]), 1);
    assert_eq!(v(&mut c, &["SETEX", "exp3", "1", "v"]), Value::Okay);
    assert_eq!(v(&mut c, &["SET", "keep", "v"]), Value::Okay);
    std::thread::sleep(Duration::from_millis(1200));
    for k in ["exp", "exp2", "exp3"] {
        assert_eq!(v(&mut c, &["GET", k]), Value::Nil, "GET {k}");
        assert_eq!(q::<i64>(&mut c, &["EXISTS", k]), 0, "EXISTS {k}");
        assert_eq!(q::<i64>(&mut c, &["TTL", k]), -2, "TTL {k}");
        assert_eq!(q::<i64>(&mut c, &["PTTL", k]), -2, "PTTL {k}");
        assert_eq!(q::<i64>(&mut c, &["STRLEN", k]), 0, "STRLEN {k}");
        assert_eq!(
            v(&mut c, &["TYPE", k]),
            Value::SimpleString("none".into()),
            "TYPE {k}"
        );
    }
    assert_eq!(
        v(&mut c, &["MGET", "exp", "keep"]),
        Value::Array(vec![Value::Nil, bulk("v")])
    );
    let keys: Vec<String> = q(&mut c, &["KEYS", "*"]);
    assert_eq!(keys, vec!["keep".to_string()]);
    let (cursor, scanned): (String, Vec<String>) = q(&mut c, &["SCAN", "0", "COUNT", "1000"]);
    assert_eq!(cursor, "0");
    assert_eq!(scanned, vec!["keep".to_string()]);
    // An expired key behaves as missing for writes.
    assert_eq!(q::<i64>(&mut c, &["APPEND", "exp", "x"]), 1);
    assert_eq!(v(&mut c, &["GET", "exp"]), bulk("x"));
    assert_eq!(q::<i64>(&mut c, &["TTL", "exp"]), -1);
    assert_eq!(q::<i64>(&mut c, &["INCR", "exp2"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SETNX", "exp3", "y"]), 1);
    assert_eq!(q::<i64>(&mut c, &["DEL", "nothing", "keep"]), 1);
}

// ---------------------------------------------------------------------------
// keyspace
// ---------------------------------------------------------------------------

#[test]
fn scan_iterates_everything() {
    let s = Server::start();
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 0..500 {
        p.cmd("SET").arg(format!("scan:{i}")).arg(i).ignore();
    }
    for i in 0..50 {
        p.cmd("SET").arg(format!("other:{i}")).arg(i).ignore();
    }
    p.query::<()>(&mut c).unwrap();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 550);

    // Full iteration with MATCH and COUNT.
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let (next, keys): (String, Vec<String>) =
            q(&mut c, &["SCAN", &cursor, "MATCH", "scan:*", "COUNT", "37"]);
        for k in keys {
            assert!(k.starts_with("scan:"), "MATCH let {k} through");
            seen.insert(k);
        }
        rounds += 1;
        assert!(rounds < 10_000, "SCAN did not terminate");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let expected: HashSet<String> = (0..500).map(|i| format!("scan:{i}")).collect();
    assert_eq!(seen, expected);

    // Without MATCH, small COUNT: every key, terminates.
    let mut all = HashSet::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let (next, keys): (String, Vec<String>) = q(&mut c, &["SCAN", &cursor, "COUNT", "10"]);
        all.extend(keys);
        rounds += 1;
        assert!(rounds < 10_000, "SCAN did not terminate");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(all.len(), 550);

    // TYPE filter.
    let (_, keys): (String, Vec<String>) = q(
        &mut c,
        &[
            "SCAN", "0", "COUNT", "10000", "TYPE", "string", "MATCH", "other:1?",
        ],
    );
    let keys: BTreeSet<String> = keys.into_iter().collect();
    let expected: BTreeSet<String> = (10..20).map(|i| format!("other:{i}")).collect();
    assert_eq!(keys, expected);
    let (_, keys): (String, Vec<String>) =
        q(&mut c, &["SCAN", "0", "COUNT", "10000", "TYPE", "list"]);
    assert!(keys.is_empty());

    assert_eq!(e(&mut c, &["SCAN", "abc"]), "ERR invalid cursor");
    assert_eq!(e(&mut c, &["SCAN", "0", "COUNT", "0"]), SYNTAX);
    assert_eq!(e(&mut c, &["SCAN", "0", "COUNT", "x"]), NOT_INT);
    assert_eq!(e(&mut c, &["SCAN", "0", "FOO"]), SYNTAX);
    assert_eq!(e(&mut c, &["SCAN", "0", "MATCH"]), SYNTAX);
}

#[test]
fn scan_empty_db() {
    let s = Server::start();
    let mut c = s.conn();
    let (cursor, keys): (String, Vec<String>) = q(&mut c, &["SCAN", "0"]);
    assert_eq!(cursor, "0");
    assert!(keys.is_empty());
}

#[test]
fn keys_patterns() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(
        v(
            &mut c,
            &[
                "MSET", "hello", "1", "hallo", "1", "hxllo", "1", "hllo", "1", "heeello", "1",
                "other", "1"
            ]
        ),
        Value::Okay
    );
    let k = |c: &mut Connection, pat: &str| -> BTreeSet<String> {
        q::<Vec<String>>(c, &["KEYS", pat]).into_iter().collect()
    };
    let set = |xs: &[&str]| -> BTreeSet<String> { xs.iter().map(|s| s.to_string()).collect() };
    assert_eq!(
        k(&mut c, "*"),
        set(&["hello", "hallo", "hxllo", "hllo", "heeello", "other"])
    );
    assert_eq!(k(&mut c, "h?llo"), set(&["hello", "hallo", "hxllo"]));
    assert_eq!(
        k(&mut c, "h*llo"),
        set(&["hello", "hallo", "hxllo", "hllo", "heeello"])
    );
    assert_eq!(k(&mut c, "h[ae]llo"), set(&["hello", "hallo"]));
    assert_eq!(k(&mut c, "h[^e]llo"), set(&["hallo", "hxllo"]));
    assert_eq!(k(&mut c, "h[a-b]llo"), set(&["hallo"]));
    assert_eq!(k(&mut c, "hello"), set(&["hello"]));
    assert_eq!(k(&mut c, "nomatch*"), set(&[]));
    // Escaping.
    assert_eq!(v(&mut c, &["SET", "h*llo", "1"]), Value::Okay);
    assert_eq!(k(&mut c, "h\\*llo"), set(&["h*llo"]));
    assert_eq!(
        e(&mut c, &["KEYS"]),
        "ERR wrong number of arguments for 'keys' command"
    );
}

#[test]
fn dbsize_flushdb_flushall_randomkey() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    assert_eq!(v(&mut c, &["RANDOMKEY"]), Value::Nil);
    assert_eq!(v(&mut c, &["SET", "only", "1"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 1);
    assert_eq!(v(&mut c, &["RANDOMKEY"]), bulk("only"));
    assert_eq!(
        v(&mut c, &["MSET", "a", "1", "b", "2", "c", "3"]),
        Value::Okay
    );
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 4);
    let rk: String = q(&mut c, &["RANDOMKEY"]);
    assert!(["only", "a", "b", "c"].contains(&rk.as_str()), "{rk}");
    assert_eq!(q::<i64>(&mut c, &["DEL", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 3);
    assert_eq!(v(&mut c, &["FLUSHDB"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    assert_eq!(v(&mut c, &["GET", "only"]), Value::Nil);
    assert_eq!(v(&mut c, &["RANDOMKEY"]), Value::Nil);
    assert_eq!(v(&mut c, &["SET", "x", "1"]), Value::Okay);
    assert_eq!(v(&mut c, &["FLUSHDB", "SYNC"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    assert_eq!(v(&mut c, &["SET", "x", "1"]), Value::Okay);
    assert_eq!(v(&mut c, &["FLUSHALL"]), Value::Okay);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    assert_eq!(v(&mut c, &["SET", "x", "1"]), Value::Okay);
    assert_eq!(v(&mut c, &["FLUSHALL", "ASYNC"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "x"]), Value::Nil);
    // Keys written after a flush are there.
    assert_eq!(v(&mut c, &["SET", "after", "1"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "after"]), bulk("1"));
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 1);
    assert_eq!(e(&mut c, &["FLUSHDB", "FOO"]), SYNTAX);
    assert_eq!(
        e(&mut c, &["DBSIZE", "x"]),
        "ERR wrong number of arguments for 'dbsize' command"
    );
}

#[test]
fn binary_safe_keys_and_values() {
    let s = Server::start();
    let mut c = s.conn();
    let key: &[u8] = b"bin\x00\xff\r\n key\t";
    let value: Vec<u8> = (0..=255u8)
        .chain(b"\r\n$3\r\n*1\r\n".iter().copied())
        .collect();
    let ok: Value = redis::cmd("SET")
        .arg(key)
        .arg(&value)
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, Value::Okay);
    let got: Vec<u8> = redis::cmd("GET").arg(key).query(&mut c).unwrap();
    assert_eq!(got, value);
    let n: i64 = redis::cmd("STRLEN").arg(key).query(&mut c).unwrap();
    assert_eq!(n, value.len() as i64);
    let n: i64 = redis::cmd("APPEND")
        .arg(key)
        .arg(b"\x00")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, value.len() as i64 + 1);
    let n: i64 = redis::cmd("EXISTS").arg(key).query(&mut c).unwrap();
    assert_eq!(n, 1);
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("bin*").query(&mut c).unwrap();
    assert_eq!(keys, vec![key.to_vec()]);
    // A key that differs only after a NUL byte is a different key.
    let other: &[u8] = b"bin\x00\xfe";
    let got: Option<Vec<u8>> = redis::cmd("GET").arg(other).query(&mut c).unwrap();
    assert_eq!(got, None);
    // Large value (1 MiB + some).
    let big: Vec<u8> = (0..(1 << 20) + 17).map(|i| (i * 31 % 251) as u8).collect();
    let ok: Value = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, Value::Okay);
    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut c).unwrap();
    assert_eq!(got, big);
    // Empty key.
    let ok: Value = redis::cmd("SET")
        .arg("")
        .arg("empty-key")
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, Value::Okay);
    assert_eq!(v(&mut c, &["GET", ""]), bulk("empty-key"));
    let n: i64 = redis::cmd("DEL").arg(key).query(&mut c).unwrap();
    assert_eq!(n, 1);
}

// ---------------------------------------------------------------------------
// connection
// ---------------------------------------------------------------------------

#[test]
fn ping_echo() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["PING"]), Value::SimpleString("PONG".into()));
    assert_eq!(v(&mut c, &["PING", "hello world"]), bulk("hello world"));
    assert_eq!(v(&mut c, &["ECHO", "hi"]), bulk("hi"));
    assert_eq!(v(&mut c, &["ECHO", ""]), bulk(""));
    assert_eq!(
        e(&mut c, &["PING", "a", "b"]),
        "ERR wrong number of arguments for 'ping' command"
    );
    assert_eq!(
        e(&mut c, &["ECHO"]),
        "ERR wrong number of arguments for 'echo' command"
    );
    // Raw: exact bytes.
    let mut r = s.raw();
    r.send(b"*1\r\n$4\r\nPING\r\n").unwrap();
    assert_eq!(r.read().unwrap(), Reply::Simple("PONG".into()));
    r.send(b"PING\r\n").unwrap(); // inline
    assert_eq!(r.read().unwrap(), Reply::Simple("PONG".into()));
    r.send(b"ping\r\n").unwrap();
    assert_eq!(r.read().unwrap(), Reply::Simple("PONG".into()));
    r.send(b"ECHO \"a b\"\r\n").unwrap();
    assert_eq!(r.read().unwrap(), Reply::Bulk(b"a b".to_vec()));
    // Empty inline lines are ignored.
    r.send(b"\r\n\r\nPING\r\n").unwrap();
    assert_eq!(r.read().unwrap(), Reply::Simple("PONG".into()));
}

#[test]
fn unknown_command_and_arity() {
    let s = Server::start();
    let mut c = s.conn();
    let msg = e(&mut c, &["FOO", "a", "b"]);
    assert!(
        msg.starts_with("ERR unknown command 'FOO'"),
        "unexpected: {msg}"
    );
    let msg = e(&mut c, &["foo"]);
    assert!(
        msg.starts_with("ERR unknown command 'foo'"),
        "unexpected: {msg}"
    );
    let mut r = s.raw();
    let reply = r.cmd_str(&["FOO", "a", "b"]);
    assert_eq!(
        reply,
        Reply::Error("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ".into())
    );
    assert_eq!(
        r.cmd_str(&["GET"]),
        Reply::Error("ERR wrong number of arguments for 'get' command".into())
    );
    // The connection stays usable after errors.
    assert_eq!(r.cmd_str(&["PING"]), Reply::Simple("PONG".into()));
}

#[test]
fn hello_resp2_and_resp3() {
    let s = Server::start();
    let mut r = s.raw();
    // HELLO 2: flat array of field/value pairs.
    let Reply::Array(items) = r.cmd_str(&["HELLO", "2"]) else {
        panic!("HELLO 2 must answer an array");
    };
    assert_eq!(items.len() % 2, 0);
    let fields: Vec<String> = items.iter().step_by(2).map(|x| x.as_str()).collect();
    for f in [
        "server", "version", "proto", "id", "mode", "role", "modules",
    ] {
        assert!(
            fields.contains(&f.to_string()),
            "HELLO 2 lacks {f}: {fields:?}"
        );
    }
    let proto_at = fields.iter().position(|f| f == "proto").unwrap();
    assert_eq!(items[proto_at * 2 + 1], Reply::Int(2));
    // GET of a missing key is $-1 in RESP2.
    r.send(b"*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n").unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r.reader, &mut line).unwrap();
    assert_eq!(line, "$-1\r\n");

    // HELLO 3: a map.
    let Reply::Map(pairs) = r.cmd_str(&["HELLO", "3"]) else {
        panic!("HELLO 3 must answer a map");
    };
    let get = |name: &str| -> Reply {
        pairs
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .unwrap_or_else(|| panic!("HELLO 3 lacks {name}"))
            .1
            .clone()
    };
    assert!(!get("server").as_str().is_empty());
    assert!(!get("version").as_str().is_empty());
    assert_eq!(get("proto"), Reply::Int(3));
    assert!(matches!(get("id"), Reply::Int(_)));
    // Now RESP3: GET of a missing key is `_`.
    r.send(b"*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n").unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r.reader, &mut line).unwrap();
    assert_eq!(line, "_\r\n");
    // Bare HELLO keeps the protocol (still a map).
    assert!(matches!(r.cmd_str(&["HELLO"]), Reply::Map(_)));
    // Back to 2.
    assert!(matches!(r.cmd_str(&["HELLO", "2"]), Reply::Array(_)));
    assert_eq!(
        r.cmd_str(&["HELLO", "4"]),
        Reply::Error("NOPROTO unsupported protocol version".into())
    );
    assert_eq!(
        r.cmd_str(&["HELLO", "1"]),
        Reply::Error("NOPROTO unsupported protocol version".into())
    );
    assert_eq!(
        r.cmd_str(&["HELLO", "abc"]),
        Reply::Error("ERR Protocol version is not an integer or out of range".into())
    );
    // HELLO ... SETNAME
    assert!(matches!(
        r.cmd_str(&["HELLO", "2", "SETNAME", "helloname"]),
        Reply::Array(_)
    ));
    assert_eq!(
        r.cmd_str(&["CLIENT", "GETNAME"]),
        Reply::Bulk(b"helloname".to_vec())
    );
    // Still RESP2.
    assert_eq!(r.cmd_str(&["PING"]), Reply::Simple("PONG".into()));
}

#[test]
fn auth_and_hello_auth() {
    let s = Server::start_with(&["--requirepass", "s3cret"]);
    let mut r = s.raw();
    assert_eq!(
        r.cmd_str(&["GET", "k"]),
        Reply::Error("NOAUTH Authentication required.".into())
    );
    assert_eq!(
        r.cmd_str(&["SET", "k", "v"]),
        Reply::Error("NOAUTH Authentication required.".into())
    );
    assert_eq!(
        r.cmd_str(&["AUTH", "wrong"]),
        Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
    );
    assert_eq!(
        r.cmd_str(&["AUTH", "default", "wrong"]),
        Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
    );
    assert_eq!(
        r.cmd_str(&["AUTH", "a", "b", "c"]),
        Reply::Error(SYNTAX.into())
    );
    assert_eq!(r.cmd_str(&["AUTH", "s3cret"]), Reply::Simple("OK".into()));
    assert_eq!(r.cmd_str(&["SET", "k", "v"]), Reply::Simple("OK".into()));
    assert_eq!(r.cmd_str(&["GET", "k"]), Reply::Bulk(b"v".to_vec()));

    // AUTH user pass
    let mut r2 = s.raw();
    assert_eq!(
        r2.cmd_str(&["AUTH", "default", "s3cret"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(r2.cmd_str(&["GET", "k"]), Reply::Bulk(b"v".to_vec()));

    // HELLO without AUTH on a protected server.
    let mut r3 = s.raw();
    // 7.0 says "the HELLO AUTH <user> <pass> option", 7.2 "the HELLO
    // <proto> AUTH <user> <pass> option": accept both.
    match r3.cmd_str(&["HELLO", "3"]) {
        Reply::Error(msg) => assert!(
            msg.starts_with("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO ")
                && msg.ends_with("AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"),
            "{msg}"
        ),
        other => panic!("HELLO 3 before AUTH: {other:?}"),
    }
    assert_eq!(
        r3.cmd_str(&["HELLO", "3", "AUTH", "default", "nope"]),
        Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
    );
    assert!(matches!(
        r3.cmd_str(&["HELLO", "3", "AUTH", "default", "s3cret"]),
        Reply::Map(_)
    ));
    assert_eq!(r3.cmd_str(&["GET", "k"]), Reply::Bulk(b"v".to_vec()));
    assert!(matches!(
        r3.cmd_str(&["HELLO", "2", "AUTH", "default", "s3cret", "SETNAME", "n1"]),
        Reply::Array(_)
    ));
    assert_eq!(
        r3.cmd_str(&["CLIENT", "GETNAME"]),
        Reply::Bulk(b"n1".to_vec())
    );

    // redis-rs with a password in the URL (it sends HELLO/AUTH itself).
    let mut c = common::connect(&s.client_for(":s3cret", ""));
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("v"));
    let mut c3 = common::connect(&s.client_for(":s3cret", "?protocol=resp3"));
    assert_eq!(v(&mut c3, &["GET", "k"]), bulk("v"));
    // Wrong password: connecting fails.
    assert!(
        s.client_for(":bad", "")
            .get_connection_with_timeout(Duration::from_secs(10))
            .is_err()
    );
    // Without password: commands fail with NOAUTH.
    let mut c0 = common::connect(&s.client());
    let msg = e(&mut c0, &["GET", "k"]);
    assert_eq!(msg, "NOAUTH Authentication required.");
}

#[test]
fn auth_without_password_configured() {
    let s = Server::start();
    let mut r = s.raw();
    assert_eq!(
        r.cmd_str(&["AUTH", "x"]),
        Reply::Error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
                .into()
        )
    );
    // `AUTH default <anything>` succeeds when the default user is nopass.
    assert_eq!(
        r.cmd_str(&["AUTH", "default", "anything"]),
        Reply::Simple("OK".into())
    );
    assert!(matches!(
        r.cmd_str(&["HELLO", "3", "AUTH", "default", "x"]),
        Reply::Map(_)
    ));
}

#[test]
fn select_quit_reset() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["SELECT", "0"]), Value::Okay);
    assert_eq!(v(&mut c, &["SELECT", "15"]), Value::Okay);
    assert_eq!(e(&mut c, &["SELECT", "16"]), "ERR DB index is out of range");
    assert_eq!(e(&mut c, &["SELECT", "-1"]), "ERR DB index is out of range");
    assert_eq!(e(&mut c, &["SELECT", "abc"]), NOT_INT);

    let mut r = s.raw();
    assert_eq!(
        r.cmd_str(&["CLIENT", "SETNAME", "before-reset"]),
        Reply::Simple("OK".into())
    );
    assert!(matches!(r.cmd_str(&["HELLO", "3"]), Reply::Map(_)));
    assert_eq!(r.cmd_str(&["RESET"]), Reply::Simple("RESET".into()));
    // RESET drops the name and goes back to RESP2.
    r.send(b"*2\r\n$6\r\nCLIENT\r\n$7\r\nGETNAME\r\n").unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r.reader, &mut line).unwrap();
    assert_eq!(line, "$-1\r\n");
    assert_eq!(r.cmd_str(&["QUIT"]), Reply::Simple("OK".into()));
    assert!(
        r.is_closed_within(Duration::from_secs(5)),
        "connection still open after QUIT"
    );
    // The server is fine.
    assert_eq!(v(&mut c, &["PING"]), Value::SimpleString("PONG".into()));
}

#[test]
fn reset_deauthenticates() {
    let s = Server::start_with(&["--requirepass", "pw"]);
    let mut r = s.raw();
    assert_eq!(r.cmd_str(&["AUTH", "pw"]), Reply::Simple("OK".into()));
    assert_eq!(r.cmd_str(&["SET", "k", "v"]), Reply::Simple("OK".into()));
    assert_eq!(r.cmd_str(&["RESET"]), Reply::Simple("RESET".into()));
    assert_eq!(
        r.cmd_str(&["GET", "k"]),
        Reply::Error("NOAUTH Authentication required.".into())
    );
}

#[test]
fn client_subcommands() {
    let s = Server::start();
    let mut c = s.conn();
    let id: i64 = q(&mut c, &["CLIENT", "ID"]);
    assert!(id > 0);
    let mut c2 = s.conn();
    let id2: i64 = q(&mut c2, &["CLIENT", "ID"]);
    assert_ne!(id, id2, "two connections share a client id");
    assert_eq!(v(&mut c, &["CLIENT", "GETNAME"]), Value::Nil);
    assert_eq!(v(&mut c, &["CLIENT", "SETNAME", "alice"]), Value::Okay);
    assert_eq!(v(&mut c, &["CLIENT", "GETNAME"]), bulk("alice"));
    assert_eq!(
        e(&mut c, &["CLIENT", "SETNAME", "bad name"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(v(&mut c, &["CLIENT", "GETNAME"]), bulk("alice"));
    // Empty name clears it.
    assert_eq!(v(&mut c, &["CLIENT", "SETNAME", ""]), Value::Okay);
    assert_eq!(v(&mut c, &["CLIENT", "GETNAME"]), Value::Nil);
    assert_eq!(v(&mut c, &["CLIENT", "SETNAME", "alice"]), Value::Okay);

    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    assert!(
        list.lines().count() >= 2,
        "CLIENT LIST should list both connections: {list}"
    );
    let mine = list
        .lines()
        .find(|l| l.starts_with(&format!("id={id} ")))
        .unwrap_or_else(|| panic!("CLIENT LIST lacks id={id}: {list}"));
    assert!(mine.contains(" name=alice "), "{mine}");
    assert!(mine.contains(" addr=127.0.0.1:"), "{mine}");
    assert!(mine.contains(" cmd=client"), "{mine}");
    let info: String = q(&mut c, &["CLIENT", "INFO"]);
    assert!(info.starts_with(&format!("id={id} ")), "{info}");
    assert!(info.contains(" name=alice "), "{info}");
    assert!(
        info.ends_with('\n'),
        "CLIENT INFO should end with a newline"
    );

    assert_eq!(v(&mut c, &["CLIENT", "NO-EVICT", "on"]), Value::Okay);
    assert_eq!(v(&mut c, &["CLIENT", "NO-EVICT", "off"]), Value::Okay);
    assert_eq!(e(&mut c, &["CLIENT", "NO-EVICT", "maybe"]), SYNTAX);
    let msg = e(&mut c, &["CLIENT", "FOO"]);
    assert!(
        msg.starts_with("ERR unknown subcommand 'FOO'"),
        "unexpected: {msg}"
    );
    assert_eq!(
        e(&mut c, &["CLIENT"]),
        "ERR wrong number of arguments for 'client' command"
    );
}

#[test]
fn client_setinfo_no_touch() {
    let s = Server::start();
    let mut c = s.conn();
    if server_version(&mut c) < (7, 2) {
        eprintln!("skipped: CLIENT SETINFO / NO-TOUCH need Redis 7.2");
        return;
    }
    assert_eq!(
        v(&mut c, &["CLIENT", "SETINFO", "lib-name", "mylib"]),
        Value::Okay
    );
    assert_eq!(
        v(&mut c, &["CLIENT", "SETINFO", "LIB-VER", "1.2.3"]),
        Value::Okay
    );
    let info: String = q(&mut c, &["CLIENT", "INFO"]);
    assert!(info.contains("lib-name=mylib"), "{info}");
    assert!(info.contains("lib-ver=1.2.3"), "{info}");
    assert_eq!(
        e(&mut c, &["CLIENT", "SETINFO", "foo", "bar"]),
        "ERR Unrecognized option 'foo'"
    );
    assert_eq!(v(&mut c, &["CLIENT", "NO-TOUCH", "on"]), Value::Okay);
    assert_eq!(v(&mut c, &["CLIENT", "NO-TOUCH", "OFF"]), Value::Okay);
}

// ---------------------------------------------------------------------------
// server
// ---------------------------------------------------------------------------

#[test]
fn command_introspection() {
    let s = Server::start();
    let mut c = s.conn();
    let count: i64 = q(&mut c, &["COMMAND", "COUNT"]);
    assert!(count >= 20, "COMMAND COUNT = {count}");
    let Value::Array(all) = v(&mut c, &["COMMAND"]) else {
        panic!("COMMAND must answer an array");
    };
    assert_eq!(all.len() as i64, count, "COMMAND COUNT != len(COMMAND)");
    let names: HashSet<String> = all
        .iter()
        .map(|entry| match entry {
            Value::Array(fields) => redis::from_redis_value_ref::<String>(&fields[0]).unwrap(),
            other => panic!("COMMAND entry is not an array: {other:?}"),
        })
        .collect();
    for name in [
        "get",
        "set",
        "del",
        "ping",
        "hello",
        "command",
        "config",
        "info",
        "client",
        "scan",
        "incrbyfloat",
        "getex",
        "expire",
    ] {
        assert!(names.contains(name), "COMMAND lacks {name}");
    }

    // COMMAND INFO: [name, arity, flags, first, last, step, ...]
    let Value::Array(infos) = v(
        &mut c,
        &["COMMAND", "INFO", "get", "set", "mget", "nosuchcmd"],
    ) else {
        panic!("COMMAND INFO must answer an array");
    };
    assert_eq!(infos.len(), 4);
    let check = |entry: &Value, name: &str, arity: i64, first: i64, last: i64, step: i64| {
        let Value::Array(f) = entry else {
            panic!("COMMAND INFO {name}: {entry:?}");
        };
        assert_eq!(f[0], bulk(name));
        assert_eq!(f[1], Value::Int(arity), "{name} arity");
        assert!(
            matches!(f[2], Value::Array(_) | Value::Set(_)),
            "{name} flags"
        );
        assert_eq!(f[3], Value::Int(first), "{name} first key");
        assert_eq!(f[4], Value::Int(last), "{name} last key");
        assert_eq!(f[5], Value::Int(step), "{name} step");
    };
    check(&infos[0], "get", 2, 1, 1, 1);
    check(&infos[1], "set", -3, 1, 1, 1);
    check(&infos[2], "mget", -2, 1, -1, 1);
    assert_eq!(infos[3], Value::Nil);
    // Case-insensitive.
    let Value::Array(infos) = v(&mut c, &["COMMAND", "INFO", "GET"]) else {
        panic!();
    };
    check(&infos[0], "get", 2, 1, 1, 1);

    // COMMAND DOCS get: RESP2 flat [name, doc-map, ...]
    let Value::Array(docs) = v(&mut c, &["COMMAND", "DOCS", "get"]) else {
        panic!("COMMAND DOCS must answer an array in RESP2");
    };
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0], bulk("get"));
    let Value::Array(doc) = &docs[1] else {
        panic!("COMMAND DOCS entry: {:?}", docs[1]);
    };
    let doc_fields: Vec<String> = doc
        .iter()
        .step_by(2)
        .map(|x| redis::from_redis_value_ref::<String>(x).unwrap())
        .collect();
    assert!(
        doc_fields.contains(&"summary".to_string()),
        "{doc_fields:?}"
    );
    // DOCS for everything: what redis-cli asks for at startup.
    let Value::Array(all_docs) = v(&mut c, &["COMMAND", "DOCS"]) else {
        panic!("COMMAND DOCS must answer an array");
    };
    assert!(all_docs.len() >= 2 * 20);

    let list: Vec<String> = q(&mut c, &["COMMAND", "LIST"]);
    for name in ["get", "set", "ping", "command"] {
        assert!(
            list.contains(&name.to_string()),
            "COMMAND LIST lacks {name}"
        );
    }
    // Redis 7.0 lists subcommands (e.g. config|get) too.
    assert!(list.len() as i64 >= count);
    let msg = e(&mut c, &["COMMAND", "FOO"]);
    assert!(
        msg.starts_with("ERR unknown subcommand 'FOO'"),
        "unexpected: {msg}"
    );
}

fn config_get(c: &mut Connection, pattern: &str) -> Vec<(String, String)> {
    let v = v(c, &["CONFIG", "GET", pattern]);
    let flat: Vec<String> = match v {
        Value::Array(items) => items
            .iter()
            .map(|x| redis::from_redis_value_ref::<String>(x).unwrap())
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .flat_map(|(k, v)| {
                [
                    redis::from_redis_value_ref::<String>(k).unwrap(),
                    redis::from_redis_value_ref::<String>(v).unwrap(),
                ]
            })
            .collect(),
        other => panic!("CONFIG GET answered {other:?}"),
    };
    assert_eq!(flat.len() % 2, 0);
    flat.chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect()
}

#[test]
fn config_get_set() {
    let s = Server::start();
    let mut c = s.conn();
    let save = config_get(&mut c, "save");
    assert_eq!(save.len(), 1);
    assert_eq!(save[0].0, "save");
    let aof = config_get(&mut c, "appendonly");
    assert_eq!(aof.len(), 1);
    assert_eq!(aof[0].0, "appendonly");
    assert!(["yes", "no"].contains(&aof[0].1.as_str()), "{aof:?}");
    assert_eq!(
        config_get(&mut c, "maxmemory"),
        vec![("maxmemory".into(), "0".into())]
    );
    assert_eq!(
        config_get(&mut c, "databases"),
        vec![("databases".into(), "16".into())]
    );
    // Case-insensitive names (Redis 7.0 echoes the name as given, 7.2
    // lower-cases it; accept both).
    let upper = config_get(&mut c, "MAXMEMORY");
    assert_eq!(upper.len(), 1, "{upper:?}");
    assert_eq!(upper[0].0.to_ascii_lowercase(), "maxmemory");
    assert_eq!(upper[0].1, "0");
    // Glob patterns.
    let mm = config_get(&mut c, "maxmemory*");
    assert!(mm.iter().any(|(k, _)| k == "maxmemory"), "{mm:?}");
    assert!(mm.iter().all(|(k, _)| k.starts_with("maxmemory")), "{mm:?}");
    let db = config_get(&mut c, "data*s");
    assert!(db.iter().any(|(k, _)| k == "databases"), "{db:?}");
    let all = config_get(&mut c, "*");
    for name in ["save", "appendonly", "maxmemory", "databases"] {
        assert!(
            all.iter().any(|(k, _)| k == name),
            "CONFIG GET * lacks {name}"
        );
    }
    assert!(config_get(&mut c, "nosuchparameter").is_empty());
    // Several parameters at once (7.0).
    let two = v(&mut c, &["CONFIG", "GET", "maxmemory", "databases"]);
    let Value::Array(two) = two else {
        panic!("{two:?}")
    };
    assert_eq!(two.len(), 4);

    assert_eq!(v(&mut c, &["CONFIG", "SET", "maxmemory", "0"]), Value::Okay);
    assert_eq!(
        config_get(&mut c, "maxmemory"),
        vec![("maxmemory".into(), "0".into())]
    );
    assert_eq!(
        e(&mut c, &["CONFIG", "SET", "nosuchparameter", "1"]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuchparameter'"
    );
    assert_eq!(v(&mut c, &["CONFIG", "RESETSTAT"]), Value::Okay);
    assert_eq!(
        e(&mut c, &["CONFIG", "GET"]),
        "ERR wrong number of arguments for 'config|get' command"
    );
    let msg = e(&mut c, &["CONFIG", "FOO"]);
    assert!(
        msg.starts_with("ERR unknown subcommand 'FOO'"),
        "unexpected: {msg}"
    );
}

const MIB: usize = 1024 * 1024;

/// The error CONFIG SET gives for a bad `proto-max-bulk-len`, after the dash.
fn bulk_len_error(detail: &str) -> String {
    format!("ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - {detail}")
}

#[test]
fn config_proto_max_bulk_len() {
    let s = Server::start();
    let mut c = s.conn();
    let get = |c: &mut Connection| config_get(c, "proto-max-bulk-len");
    let is = |bytes: usize| vec![("proto-max-bulk-len".to_string(), bytes.to_string())];
    // dynkv's default is what its node-to-node frames are sized for.
    let default = if is_real_redis() { 512 * MIB } else { 32 * MIB };
    assert_eq!(get(&mut c), is(default));

    for (text, bytes) in [
        ("1mb", MIB),
        ("2m", 2_000_000),
        ("32MB", 32 * MIB),
        ("1048576", MIB),
        ("4194304b", 4 * MIB),
    ] {
        assert_eq!(
            v(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", text]),
            Value::Okay,
            "{text}"
        );
        assert_eq!(get(&mut c), is(bytes), "{text}");
    }
    for bad in ["abc", "-1", "1.5mb", "1tb"] {
        assert_eq!(
            e(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", bad]),
            bulk_len_error("argument must be a memory value"),
            "{bad}"
        );
    }
    let max = if is_real_redis() {
        i64::MAX as u64
    } else {
        32 * MIB as u64
    };
    for small in ["1048575", "1000k", "mb"] {
        assert_eq!(
            e(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", small]),
            bulk_len_error(&format!(
                "argument must be between 1048576 and {max} inclusive"
            )),
            "{small}"
        );
    }
    // One bad pair fails the whole command and changes nothing.
    assert_eq!(
        e(
            &mut c,
            &[
                "CONFIG",
                "SET",
                "maxmemory",
                "5",
                "proto-max-bulk-len",
                "abc"
            ]
        ),
        bulk_len_error("argument must be a memory value")
    );
    assert_eq!(
        config_get(&mut c, "maxmemory"),
        vec![("maxmemory".into(), "0".into())]
    );
    assert_eq!(get(&mut c), is(4 * MIB));
    if !is_real_redis() {
        // dynkv-only: nothing bigger than its frames can carry.
        assert_eq!(
            e(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", "64mb"]),
            bulk_len_error(&format!(
                "argument must be between 1048576 and {max} inclusive"
            ))
        );
        assert_eq!(get(&mut c), is(4 * MIB));
    }

    // From the command line, with Redis's suffixes.
    let s = Server::start_with(&["--proto-max-bulk-len", "2mb"]);
    let mut c = s.conn();
    assert_eq!(get(&mut c), is(2 * MIB));
}

#[test]
fn append_cannot_grow_a_string_past_proto_max_bulk_len() {
    let s = Server::start();
    let mut c = s.conn();
    let too_long = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    assert_eq!(
        v(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", "1mb"]),
        Value::Okay
    );
    let set = |c: &mut Connection, key: &str, len: usize| -> Value {
        redis::cmd("SET")
            .arg(key)
            .arg(vec![b'x'; len])
            .query(c)
            .unwrap_or_else(|e| panic!("SET {key} ({len} bytes): {}", err_text(&e)))
    };
    assert_eq!(set(&mut c, "k", MIB - 1), Value::Okay);
    // Up to the limit exactly...
    assert_eq!(q::<i64>(&mut c, &["APPEND", "k", "a"]), MIB as i64);
    // ...and not one byte more; the value is left as it was.
    assert_eq!(e(&mut c, &["APPEND", "k", "b"]), too_long);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "k"]), MIB as i64);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "k", ""]), MIB as i64);
    // A missing key counts as empty.
    let half = "y".repeat(MIB / 2);
    assert_eq!(
        q::<i64>(&mut c, &["APPEND", "fresh", &half]),
        MIB as i64 / 2
    );
    assert_eq!(q::<i64>(&mut c, &["APPEND", "fresh", &half]), MIB as i64);
    assert_eq!(e(&mut c, &["APPEND", "fresh", "z"]), too_long);
    // A value stored under a higher limit cannot be appended to at all,
    // not even with nothing (as in Redis).
    assert_eq!(
        v(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", "2mb"]),
        Value::Okay
    );
    assert_eq!(set(&mut c, "big", MIB + 10), Value::Okay);
    assert_eq!(
        v(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", "1mb"]),
        Value::Okay
    );
    assert_eq!(e(&mut c, &["APPEND", "big", ""]), too_long);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "big"]), MIB as i64 + 10);
    // The connection is still fine.
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

fn info_fields(info: &str) -> Vec<(String, String)> {
    info.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim_end().to_string()))
        .collect()
}

#[test]
fn info_sections() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(v(&mut c, &["SET", "k", "v"]), Value::Okay);
    assert_eq!(v(&mut c, &["SET", "t", "v", "EX", "100"]), Value::Okay);
    let info: String = q(&mut c, &["INFO"]);
    assert!(info.contains("\r\n"), "INFO lines end with CRLF");
    for header in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Keyspace",
    ] {
        assert!(info.contains(header), "INFO lacks {header}");
    }
    let fields = info_fields(&info);
    for f in [
        "redis_version",
        "redis_mode",
        "tcp_port",
        "uptime_in_seconds",
        "connected_clients",
        "used_memory",
        "loading",
        "total_connections_received",
        "total_commands_processed",
    ] {
        assert!(fields.iter().any(|(k, _)| k == f), "INFO lacks {f}");
    }
    let port = fields.iter().find(|(k, _)| k == "tcp_port").unwrap();
    assert_eq!(port.1, s.port().to_string());

    let server: String = q(&mut c, &["INFO", "server"]);
    assert!(server.contains("# Server"));
    assert!(
        !server.contains("# Clients"),
        "INFO server leaks other sections"
    );
    let clients: String = q(&mut c, &["INFO", "clients"]);
    assert!(clients.contains("connected_clients:"));
    let memory: String = q(&mut c, &["INFO", "memory"]);
    assert!(memory.contains("used_memory:"));
    let persistence: String = q(&mut c, &["INFO", "persistence"]);
    assert!(persistence.contains("# Persistence"));
    let stats: String = q(&mut c, &["INFO", "stats"]);
    assert!(stats.contains("total_commands_processed:"));
    let keyspace: String = q(&mut c, &["INFO", "keyspace"]);
    assert!(
        keyspace.contains("db0:keys=2,expires=1,"),
        "INFO keyspace: {keyspace}"
    );
    // Several sections, case-insensitive.
    let two: String = q(&mut c, &["INFO", "SERVER", "Clients"]);
    assert!(two.contains("# Server") && two.contains("# Clients"));
    let everything: String = q(&mut c, &["INFO", "everything"]);
    assert!(everything.contains("# Keyspace"));
    let unknown: String = q(&mut c, &["INFO", "nosuchsection"]);
    assert!(unknown.trim().is_empty(), "{unknown}");
}

#[test]
fn info_dynamo_section() {
    if is_real_redis() {
        return;
    }
    let s = Server::start_with(&["--node-name", "infotest"]);
    let mut c = s.conn();
    let info: String = q(&mut c, &["INFO", "dynamo"]);
    assert!(info.contains("# Dynamo"), "{info}");
    let fields = info_fields(&info);
    let get = |name: &str| -> String {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("INFO dynamo lacks {name}: {info}"))
            .1
            .clone()
    };
    assert_eq!(get("node_name"), "infotest");
    assert_eq!(get("members_up"), "1");
    assert_eq!(get("members_down"), "0");
    // One node: N, R, W clamped to the member count.
    assert_eq!(get("n"), "1");
    assert_eq!(get("r"), "1");
    assert_eq!(get("w"), "1");
    let owned: u64 = get("partitions_owned").parse().unwrap();
    assert!(owned > 0);
    for f in [
        "hints_pending",
        "hints_delivered",
        "read_repairs",
        "ae_keys_repaired",
        "gets_with_siblings",
        "quorum_failures",
    ] {
        let val = get(f);
        assert!(val.parse::<u64>().is_ok(), "{f}:{val} is not a number");
    }
    // Also in the default INFO.
    let all: String = q(&mut c, &["INFO"]);
    assert!(
        all.contains("node_name:infotest"),
        "INFO lacks the dynamo section"
    );
}

#[test]
fn time_lastsave_wait() {
    let s = Server::start();
    let mut c = s.conn();
    let (secs, micros): (String, String) = q(&mut c, &["TIME"]);
    let secs: u64 = secs.parse().unwrap();
    let micros: u64 = micros.parse().unwrap();
    assert!(secs.abs_diff(now_secs()) <= 5, "TIME is off: {secs}");
    assert!(micros < 1_000_000);
    let lastsave: i64 = q(&mut c, &["LASTSAVE"]);
    assert!(lastsave > 0 && lastsave as u64 <= now_secs() + 5);
    assert_eq!(q::<i64>(&mut c, &["WAIT", "0", "0"]), 0);
    assert_eq!(
        e(&mut c, &["WAIT", "0"]),
        "ERR wrong number of arguments for 'wait' command"
    );
}

// ---------------------------------------------------------------------------
// pipelining, async, RESP3
// ---------------------------------------------------------------------------

/// Builds a pipeline of 1,000 mixed commands and their expected replies
/// (as RESP2 values; `resp3` changes nothing for these types).
fn mixed_pipeline(prefix: &str) -> (redis::Pipeline, Vec<Value>) {
    let mut p = redis::pipe();
    let mut expected = Vec::new();
    let mut counter = 0i64;
    let mut app_len = 0i64;
    for i in 0..1000 {
        match i % 8 {
            0 => {
                p.cmd("SET")
                    .arg(format!("{prefix}k{i}"))
                    .arg(format!("v{i}"));
                expected.push(Value::Okay);
            }
            1 => {
                p.cmd("GET").arg(format!("{prefix}k{}", i - 1));
                expected.push(bulk(&format!("v{}", i - 1)));
            }
            2 => {
                p.cmd("INCR").arg(format!("{prefix}ctr"));
                counter += 1;
                expected.push(Value::Int(counter));
            }
            3 => {
                p.cmd("APPEND").arg(format!("{prefix}app")).arg("xy");
                app_len += 2;
                expected.push(Value::Int(app_len));
            }
            4 => {
                p.cmd("EXISTS")
                    .arg(format!("{prefix}k{}", i - 4))
                    .arg(format!("{prefix}missing"))
                    .arg(format!("{prefix}k{}", i - 4));
                expected.push(Value::Int(2));
            }
            5 => {
                p.cmd("GET").arg(format!("{prefix}missing{i}"));
                expected.push(Value::Nil);
            }
            6 => {
                p.cmd("DEL").arg(format!("{prefix}k{}", i - 6));
                expected.push(Value::Int(1));
            }
            _ => {
                p.cmd("STRLEN").arg(format!("{prefix}app"));
                expected.push(Value::Int(app_len));
            }
        }
    }
    (p, expected)
}

#[test]
fn pipeline_of_1000_mixed_commands() {
    let s = Server::start();
    let mut c = s.conn();
    let (p, expected) = mixed_pipeline("pl:");
    let got: Vec<Value> = p.query(&mut c).unwrap();
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "reply #{i}");
    }
    // Deleted keys are gone, counters right.
    assert_eq!(v(&mut c, &["GET", "pl:k0"]), Value::Nil);
    assert_eq!(q::<i64>(&mut c, &["GET", "pl:ctr"]), 125);
    // A raw pipeline written in one go, including an error in the middle.
    let mut r = s.raw();
    let mut bytes = Vec::new();
    for i in 0..200 {
        bytes.extend(common::encode(&[
            b"SET",
            format!("raw{i}").as_bytes(),
            b"x",
        ]));
    }
    bytes.extend(common::encode(&[b"GET"]));
    for i in 0..200 {
        bytes.extend(common::encode(&[b"GET", format!("raw{i}").as_bytes()]));
    }
    r.send(&bytes).unwrap();
    for _ in 0..200 {
        assert_eq!(r.read().unwrap(), Reply::Simple("OK".into()));
    }
    assert!(r.read().unwrap().is_error());
    for _ in 0..200 {
        assert_eq!(r.read().unwrap(), Reply::Bulk(b"x".to_vec()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_connection_concurrent_clients() {
    let s = Server::start();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut con = s.async_conn().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let key = format!("async:{t}:{i}");
                let _: () = redis::cmd("SET")
                    .arg(&key)
                    .arg(i)
                    .query_async(&mut con)
                    .await
                    .unwrap();
                let got: i64 = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut con)
                    .await
                    .unwrap();
                assert_eq!(got, i);
                let n: i64 = redis::cmd("INCR")
                    .arg("async:shared")
                    .query_async(&mut con)
                    .await
                    .unwrap();
                assert!(n >= 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut con = s.async_conn().await;
    let total: i64 = redis::cmd("GET")
        .arg("async:shared")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(total, 800);
}

#[test]
fn resp3_connection() {
    let s = Server::start();
    let mut c = common::connect(&s.client_resp3());
    assert_eq!(v(&mut c, &["SET", "k", "v"]), Value::Okay);
    assert_eq!(v(&mut c, &["GET", "k"]), bulk("v"));
    assert_eq!(v(&mut c, &["GET", "missing"]), Value::Nil);
    assert_eq!(v(&mut c, &["INCR", "n"]), Value::Int(1));
    assert_eq!(v(&mut c, &["TTL", "k"]), Value::Int(-1));
    assert_eq!(v(&mut c, &["TTL", "missing"]), Value::Int(-2));
    assert_eq!(
        v(&mut c, &["MGET", "k", "missing"]),
        Value::Array(vec![bulk("v"), Value::Nil])
    );
    assert_eq!(v(&mut c, &["INCRBYFLOAT", "f", "1.5"]), bulk("1.5"));
    let hello = v(&mut c, &["HELLO", "3"]);
    let Value::Map(pairs) = hello else {
        panic!("HELLO 3 over RESP3 must be a map, got {hello:?}");
    };
    let proto = pairs
        .iter()
        .find(|(k, _)| *k == bulk("proto"))
        .expect("proto in HELLO");
    assert_eq!(proto.1, Value::Int(3));
    // CONFIG GET is a map in RESP3.
    assert!(matches!(
        v(&mut c, &["CONFIG", "GET", "maxmemory"]),
        Value::Map(_)
    ));
    let msg = e(&mut c, &["GET"]);
    assert_eq!(msg, "ERR wrong number of arguments for 'get' command");

    if !is_real_redis() {
        assert_eq!(v(&mut c, &["SET", "dyn", "x"]), Value::Okay);
        let got = v(&mut c, &["DYN.GET", "dyn"]);
        let Value::Array(parts) = &got else {
            panic!("DYN.GET over RESP3: {got:?}");
        };
        assert_eq!(parts.len(), 2);
        assert!(matches!(parts[0], Value::BulkString(_)), "{got:?}");
        assert_eq!(parts[1], Value::Array(vec![bulk("x")]));
    }

    let (p, expected) = mixed_pipeline("r3:");
    let got: Vec<Value> = p.query(&mut c).unwrap();
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "reply #{i}");
    }
}
