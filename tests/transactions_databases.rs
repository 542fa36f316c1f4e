//! MULTI/EXEC/WATCH, SELECT's databases, and the key and string commands
//! that came with them (RENAME, COPY, MOVE, OBJECT, EXPIRETIME, TOUCH,
//! GETRANGE, SETRANGE, the bit commands), on one real node with the reply
//! shapes and error texts of redis-server (`DYNKV_TEST_AGAINST=redis` runs
//! the same assertions against it).

mod common;

use common::{Server, err, is_real_redis, q};
use redis::Value;

#[test]
fn multi_exec_runs_queued_commands_in_order() {
    let s = Server::start();
    let mut c = s.conn();
    let mut raw = s.raw();
    assert_eq!(raw.cmd_str(&["MULTI"]).as_str(), "OK");
    assert_eq!(raw.cmd_str(&["SET", "k", "1"]).as_str(), "QUEUED");
    assert_eq!(raw.cmd_str(&["INCR", "k"]).as_str(), "QUEUED");
    assert_eq!(raw.cmd_str(&["GET", "k"]).as_str(), "QUEUED");
    // Nothing ran yet.
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]), None);
    let exec = raw.cmd_str(&["EXEC"]);
    let common::Reply::Array(items) = &exec else {
        panic!("EXEC answered {exec:?}");
    };
    assert_eq!(items.len(), 3, "{exec:?}");
    assert_eq!(items[0].as_str(), "OK");
    assert!(matches!(items[1], common::Reply::Int(2)), "{exec:?}");
    assert!(
        matches!(&items[2], common::Reply::Bulk(b) if b == b"2"),
        "{exec:?}"
    );
    // A runtime error is one of the replies; the others still run.
    raw.cmd_str(&["MULTI"]);
    raw.cmd_str(&["HSET", "k", "f", "v"]);
    raw.cmd_str(&["SET", "j", "x"]);
    let exec = raw.cmd_str(&["EXEC"]);
    let common::Reply::Array(items) = exec else {
        panic!("EXEC answered {exec:?}");
    };
    assert!(items[0].as_str().starts_with("WRONGTYPE"), "{items:?}");
    assert_eq!(items[1].as_str(), "OK");
    assert_eq!(q::<String>(&mut c, &["GET", "j"]), "x");
}

#[test]
fn transaction_errors_match_redis() {
    let s = Server::start();
    let mut raw = s.raw();
    assert!(
        raw.cmd_str(&["EXEC"])
            .as_str()
            .contains("EXEC without MULTI")
    );
    assert!(
        raw.cmd_str(&["DISCARD"])
            .as_str()
            .contains("DISCARD without MULTI")
    );
    raw.cmd_str(&["MULTI"]);
    assert!(
        raw.cmd_str(&["MULTI"])
            .as_str()
            .contains("MULTI calls can not be nested")
    );
    assert!(
        raw.cmd_str(&["WATCH", "x"])
            .as_str()
            .contains("WATCH inside MULTI is not allowed")
    );
    // A command refused while queueing dooms the transaction.
    assert!(raw.cmd_str(&["NOSUCHCOMMAND"]).is_error());
    assert!(raw.cmd_str(&["GET"]).is_error());
    raw.cmd_str(&["SET", "a", "1"]);
    let exec = raw.cmd_str(&["EXEC"]);
    assert!(exec.as_str().starts_with("EXECABORT"), "{exec:?}");
    let mut c = s.conn();
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "a"]), None);
    // DISCARD drops the queue.
    raw.cmd_str(&["MULTI"]);
    raw.cmd_str(&["SET", "a", "1"]);
    assert_eq!(raw.cmd_str(&["DISCARD"]).as_str(), "OK");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "a"]), None);
}

#[test]
fn watch_aborts_exec_when_a_watched_key_changed() {
    let s = Server::start();
    let mut c = s.conn();
    let mut other = s.conn();
    q::<()>(&mut c, &["SET", "balance", "10"]);
    q::<()>(&mut c, &["WATCH", "balance", "absent"]);
    q::<()>(&mut other, &["INCRBY", "balance", "5"]);
    q::<()>(&mut c, &["MULTI"]);
    q::<()>(&mut c, &["SET", "balance", "0"]);
    let exec: Value = q(&mut c, &["EXEC"]);
    assert_eq!(exec, Value::Nil, "a watched key changed: EXEC must not run");
    assert_eq!(q::<i64>(&mut c, &["GET", "balance"]), 15);
    // A key created after WATCH counts as changed too.
    q::<()>(&mut c, &["WATCH", "absent"]);
    q::<()>(&mut other, &["SET", "absent", "now"]);
    q::<()>(&mut c, &["MULTI"]);
    q::<()>(&mut c, &["DEL", "absent"]);
    assert_eq!(q::<Value>(&mut c, &["EXEC"]), Value::Nil);
    // Unchanged watched keys let it run; UNWATCH forgets them.
    q::<()>(&mut c, &["WATCH", "balance"]);
    q::<()>(&mut c, &["MULTI"]);
    q::<()>(&mut c, &["INCR", "balance"]);
    assert_eq!(q::<Vec<i64>>(&mut c, &["EXEC"]), vec![16]);
    q::<()>(&mut c, &["WATCH", "balance"]);
    q::<()>(&mut other, &["INCR", "balance"]);
    q::<()>(&mut c, &["UNWATCH"]);
    q::<()>(&mut c, &["MULTI"]);
    q::<()>(&mut c, &["INCR", "balance"]);
    assert_eq!(q::<Vec<i64>>(&mut c, &["EXEC"]), vec![18]);
}

#[test]
fn redis_rs_atomic_pipelines_work() {
    let s = Server::start();
    let mut c = s.conn();
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCRBY")
        .arg("p")
        .arg(3)
        .cmd("INCRBY")
        .arg("p")
        .arg(4)
        .query(&mut c)
        .expect("atomic pipeline");
    assert_eq!((a, b), (3, 7));
    // redis::transaction retries its closure until EXEC runs.
    let total: (i64,) = redis::transaction(&mut c, &["p"], |con, pipe| {
        let now: i64 = redis::cmd("GET").arg("p").query(con)?;
        pipe.set("p", now * 2).ignore().get("p").query(con)
    })
    .expect("optimistic transaction");
    assert_eq!(total, (14,));
}

#[test]
fn databases_are_separate_namespaces() {
    let s = Server::start();
    let mut c = s.conn();
    q::<()>(&mut c, &["SET", "k", "zero"]);
    q::<()>(&mut c, &["SELECT", "1"]);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]), None);
    q::<()>(&mut c, &["SET", "k", "one"]);
    q::<()>(&mut c, &["HSET", "h", "f", "v"]);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 2);
    let mut keys: Vec<String> = q(&mut c, &["KEYS", "*"]);
    keys.sort();
    assert_eq!(keys, ["h", "k"]);
    let (_, scanned): (String, Vec<String>) = q(&mut c, &["SCAN", "0", "COUNT", "1000"]);
    assert_eq!(scanned.len(), 2);
    q::<()>(&mut c, &["SELECT", "0"]);
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "zero");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 1);
    let info: String = q(&mut c, &["INFO", "keyspace"]);
    assert!(info.contains("db0:keys=1,"), "{info}");
    assert!(info.contains("db1:keys=2,"), "{info}");
    // A URL naming a database selects it on connect.
    let url = format!("{}/1", s.url());
    let mut in_one = redis::Client::open(url)
        .expect("url")
        .get_connection()
        .expect("connect");
    assert_eq!(q::<String>(&mut in_one, &["GET", "k"]), "one");
    // MOVE refuses to overwrite, then moves.
    assert_eq!(q::<i64>(&mut c, &["MOVE", "k", "1"]), 0);
    q::<()>(&mut c, &["SET", "m", "moving"]);
    assert_eq!(q::<i64>(&mut c, &["MOVE", "m", "1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "m"]), 0);
    assert_eq!(q::<String>(&mut in_one, &["GET", "m"]), "moving");
    assert!(
        err(&mut c, &["MOVE", "k", "0"]).contains("source and destination objects are the same")
    );
    assert!(err(&mut c, &["SELECT", "16"]).contains("DB index is out of range"));
    assert!(err(&mut c, &["SELECT", "-1"]).contains("DB index is out of range"));
    assert!(err(&mut c, &["SELECT", "x"]).contains("value is not an integer or out of range"));
    // FLUSHDB empties only the selected database.
    q::<()>(&mut in_one, &["FLUSHDB"]);
    assert_eq!(q::<i64>(&mut in_one, &["DBSIZE"]), 0);
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "zero");
    q::<()>(&mut in_one, &["SET", "again", "1"]);
    q::<()>(&mut c, &["FLUSHALL"]);
    assert_eq!(q::<i64>(&mut in_one, &["DBSIZE"]), 0);
}

#[test]
fn rename_copy_and_key_introspection() {
    let s = Server::start();
    let mut c = s.conn();
    q::<()>(&mut c, &["SET", "a", "1", "EX", "100"]);
    assert_eq!(q::<String>(&mut c, &["RENAME", "a", "b"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "a"]), 0);
    assert_eq!(q::<String>(&mut c, &["GET", "b"]), "1");
    assert!(q::<i64>(&mut c, &["TTL", "b"]) > 90, "RENAME keeps the TTL");
    assert!(err(&mut c, &["RENAME", "nope", "x"]).contains("no such key"));
    q::<()>(&mut c, &["SET", "c", "3"]);
    assert_eq!(q::<i64>(&mut c, &["RENAMENX", "b", "c"]), 0);
    assert_eq!(q::<i64>(&mut c, &["RENAMENX", "b", "d"]), 1);
    q::<()>(&mut c, &["SADD", "set", "x", "y"]);
    assert_eq!(q::<String>(&mut c, &["RENAME", "set", "set2"]), "OK");
    let mut members: Vec<String> = q(&mut c, &["SMEMBERS", "set2"]);
    members.sort();
    assert_eq!(members, ["x", "y"]);
    // COPY
    assert_eq!(q::<i64>(&mut c, &["COPY", "set2", "set3"]), 1);
    assert_eq!(q::<i64>(&mut c, &["COPY", "set2", "set3"]), 0);
    assert_eq!(q::<i64>(&mut c, &["COPY", "c", "set3", "REPLACE"]), 1);
    assert_eq!(q::<String>(&mut c, &["GET", "set3"]), "3");
    assert_eq!(q::<i64>(&mut c, &["COPY", "c", "c2", "DB", "2"]), 1);
    assert_eq!(q::<i64>(&mut c, &["COPY", "nope", "z"]), 0);
    assert!(
        err(&mut c, &["COPY", "c", "c"]).contains("source and destination objects are the same")
    );
    q::<()>(&mut c, &["ZADD", "z", "1", "a", "2.5", "b"]);
    q::<()>(&mut c, &["HSET", "h", "f", "v"]);
    q::<()>(&mut c, &["INCRBY", "n", "7"]);
    assert_eq!(q::<i64>(&mut c, &["COPY", "z", "z2"]), 1);
    assert_eq!(q::<String>(&mut c, &["ZSCORE", "z2", "b"]), "2.5");
    assert_eq!(q::<i64>(&mut c, &["COPY", "h", "h2"]), 1);
    assert_eq!(q::<String>(&mut c, &["HGET", "h2", "f"]), "v");
    assert_eq!(q::<i64>(&mut c, &["COPY", "n", "n2"]), 1);
    assert_eq!(q::<i64>(&mut c, &["INCR", "n2"]), 8);
    assert_eq!(
        q::<i64>(&mut c, &["GET", "n"]),
        7,
        "the copy is independent"
    );
    // EXPIRETIME / PEXPIRETIME / TOUCH
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "nope"]), -2);
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "c"]), -1);
    q::<()>(&mut c, &["PEXPIREAT", "c", "4102444800123"]);
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "c"]), 4102444800);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRETIME", "c"]), 4102444800123);
    assert_eq!(q::<i64>(&mut c, &["TOUCH", "c", "d", "nope"]), 2);
    // OBJECT
    q::<()>(&mut c, &["SET", "int", "12345"]);
    q::<()>(&mut c, &["SET", "short", "hello"]);
    q::<()>(&mut c, &["SET", "long", &"x".repeat(100)]);
    q::<()>(&mut c, &["SADD", "ints", "1", "2"]);
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "int"]), "int");
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "short"]),
        "embstr"
    );
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "long"]), "raw");
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "h"]),
        "listpack"
    );
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "ints"]),
        "intset"
    );
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "z"]),
        "listpack"
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["OBJECT", "ENCODING", "nope"]),
        None
    );
    assert_eq!(q::<i64>(&mut c, &["OBJECT", "IDLETIME", "short"]), 0);
    assert!(q::<i64>(&mut c, &["OBJECT", "REFCOUNT", "long"]) >= 1);
    assert!(
        err(&mut c, &["OBJECT", "FREQ", "short"])
            .contains("An LFU maxmemory policy is not selected")
    );
    assert!(err(&mut c, &["OBJECT", "NOPE", "x"]).contains("unknown subcommand"));
    assert!(!q::<Vec<String>>(&mut c, &["OBJECT", "HELP"]).is_empty());
}

#[test]
fn string_ranges_and_bits() {
    let s = Server::start();
    let mut c = s.conn();
    q::<()>(&mut c, &["SET", "s", "Hello World"]);
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "s", "0", "4"]), "Hello");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "s", "-5", "-1"]), "World");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "s", "5", "2"]), "");
    assert_eq!(
        q::<String>(&mut c, &["GETRANGE", "s", "0", "1000"]),
        "Hello World"
    );
    assert_eq!(q::<String>(&mut c, &["SUBSTR", "s", "6", "-1"]), "World");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "nope", "0", "-1"]), "");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "s", "6", "Redis"]), 11);
    assert_eq!(q::<String>(&mut c, &["GET", "s"]), "Hello Redis");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "pad", "3", "x"]), 4);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "pad"]), b"\0\0\0x");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "empty", "3", ""]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "empty"]), 0);
    assert!(err(&mut c, &["SETRANGE", "s", "-1", "x"]).contains("offset is out of range"));
    assert!(
        err(&mut c, &["SETRANGE", "s", "536870912", "x"])
            .contains("string exceeds maximum allowed size")
    );
    // Bits.
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "b", "7", "1"]), 0);
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "b", "7", "1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "b", "7"]), 1);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "b", "6"]), 0);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "b", "1000"]), 0);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "b"]), [1u8]);
    assert!(
        err(&mut c, &["SETBIT", "b", "1", "2"]).contains("bit is not an integer or out of range")
    );
    assert!(
        err(&mut c, &["SETBIT", "b", "-1", "1"])
            .contains("bit offset is not an integer or out of range")
    );
    q::<()>(&mut c, &["SET", "f", "foobar"]);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "f"]), 26);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "f", "0", "0"]), 4);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "f", "1", "1"]), 6);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "f", "5", "30", "BIT"]), 17);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "nope"]), 0);
    assert!(err(&mut c, &["BITCOUNT", "f", "0"]).contains("syntax error"));
    let mut raw = s.raw();
    raw.cmd(&[b"SET", b"p", b"\xff\xf0\x00"]);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "p", "0"]), 12);
    raw.cmd(&[b"SET", b"p", b"\x00\xff\xf0"]);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "p", "1", "0"]), 8);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "p", "1", "2"]), 16);
    assert_eq!(
        q::<i64>(&mut c, &["BITPOS", "p", "1", "2", "-1", "BYTE"]),
        16
    );
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "p", "1", "7", "15", "BIT"]), 8);
    raw.cmd(&[b"SET", b"ones", b"\xff\xff\xff"]);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "ones", "0"]), 24);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "ones", "0", "0", "-1"]), -1);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "nope", "0"]), 0);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "nope", "1"]), -1);
    assert!(err(&mut c, &["BITPOS", "p", "2"]).contains("The bit argument must be 1 or 0."));
    // BITOP
    q::<()>(&mut c, &["SET", "x", "abc"]);
    q::<()>(&mut c, &["SET", "y", "a"]);
    assert_eq!(q::<i64>(&mut c, &["BITOP", "AND", "and", "x", "y"]), 3);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "and"]), b"a\0\0");
    assert_eq!(q::<i64>(&mut c, &["BITOP", "OR", "or", "x", "y"]), 3);
    assert_eq!(q::<String>(&mut c, &["GET", "or"]), "abc");
    assert_eq!(q::<i64>(&mut c, &["BITOP", "XOR", "xor", "x", "x"]), 3);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "xor"]), b"\0\0\0");
    assert_eq!(q::<i64>(&mut c, &["BITOP", "NOT", "not", "y"]), 1);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "not"]), [!b'a']);
    assert_eq!(
        q::<i64>(&mut c, &["BITOP", "OR", "not", "nope1", "nope2"]),
        0
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "not"]), 0);
    assert!(
        err(&mut c, &["BITOP", "NOT", "d", "x", "y"])
            .contains("BITOP NOT must be called with a single source key.")
    );
    assert!(err(&mut c, &["BITOP", "NAND", "d", "x"]).contains("syntax error"));
    q::<()>(&mut c, &["SADD", "set", "m"]);
    assert!(err(&mut c, &["GETRANGE", "set", "0", "1"]).contains("WRONGTYPE"));
    assert!(err(&mut c, &["SETBIT", "set", "0", "1"]).contains("WRONGTYPE"));
    assert!(err(&mut c, &["BITOP", "AND", "d", "set"]).contains("WRONGTYPE"));
    // Counters read as their text.
    q::<()>(&mut c, &["INCRBY", "n", "12"]);
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "n", "0", "0"]), "1");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "n", "1", "5"]), 2);
    assert_eq!(q::<i64>(&mut c, &["INCR", "n"]), 16);
}

#[test]
fn databases_flag_and_config() {
    if is_real_redis() {
        return;
    }
    let s = Server::start_with(&["--databases", "4"]);
    let mut c = s.conn();
    let got: Vec<String> = q(&mut c, &["CONFIG", "GET", "databases"]);
    assert_eq!(got, ["databases", "4"]);
    q::<()>(&mut c, &["SELECT", "3"]);
    assert!(err(&mut c, &["SELECT", "4"]).contains("DB index is out of range"));
    let list: String = q(&mut c, &["CLIENT", "INFO"]);
    assert!(list.contains(" db=3 "), "{list}");
}
