//! Hash, set, sorted-set and counter commands on one real node, with the
//! reply shapes and error texts of redis-server (run with
//! `DYNKV_TEST_AGAINST=redis` to check the same assertions against it).

mod common;

use common::{Server, err, q};

const WRONGTYPE: &str = "WRONGTYPE";

#[test]
fn hashes() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["HSET", "h", "a", "1", "b", "2"]), 2);
    assert_eq!(q::<i64>(&mut c, &["HSET", "h", "a", "10", "c", "3"]), 1);
    assert_eq!(q::<String>(&mut c, &["HGET", "h", "a"]), "10");
    assert_eq!(q::<Option<String>>(&mut c, &["HGET", "h", "zz"]), None);
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["HMGET", "h", "a", "nope", "c"]),
        vec![Some("10".into()), None, Some("3".into())]
    );
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]), 3);
    assert_eq!(q::<i64>(&mut c, &["HSTRLEN", "h", "a"]), 2);
    assert_eq!(q::<i64>(&mut c, &["HEXISTS", "h", "b"]), 1);
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "h", "b", "x"]), 0);
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "h", "d", "4"]), 1);
    assert_eq!(q::<i64>(&mut c, &["HDEL", "h", "d", "nope"]), 1);
    let mut keys: Vec<String> = q(&mut c, &["HKEYS", "h"]);
    keys.sort();
    assert_eq!(keys, ["a", "b", "c"]);
    let all: std::collections::HashMap<String, String> = q(&mut c, &["HGETALL", "h"]);
    assert_eq!(all.get("b").map(String::as_str), Some("2"));
    assert_eq!(q::<i64>(&mut c, &["HINCRBY", "h", "a", "5"]), 15);
    assert_eq!(
        q::<String>(&mut c, &["HINCRBYFLOAT", "h", "f", "1.5"]),
        "1.5"
    );
    assert!(err(&mut c, &["HINCRBY", "h", "f", "1"]).contains("hash value is not an integer"));
    assert!(err(&mut c, &["HSET", "h", "a"]).contains("wrong number of arguments"));
    assert_eq!(q::<String>(&mut c, &["TYPE", "h"]), "hash");
    assert!(err(&mut c, &["GET", "h"]).contains(WRONGTYPE));
    assert!(err(&mut c, &["SADD", "h", "m"]).contains(WRONGTYPE));
    // A 100,000-byte field and value.
    let big = "f".repeat(100_000);
    assert_eq!(q::<i64>(&mut c, &["HSET", "h", &big, &big]), 1);
    assert_eq!(q::<String>(&mut c, &["HGET", "h", &big]), big);
    assert_eq!(q::<i64>(&mut c, &["DEL", "h"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "h"]), 0);
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]), 0);
    assert_eq!(q::<String>(&mut c, &["TYPE", "h"]), "none");
}

#[test]
fn sets() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["SADD", "s", "a", "b", "c", "a"]), 3);
    assert_eq!(q::<i64>(&mut c, &["SADD", "t", "b", "c", "d"]), 3);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "s"]), 3);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "s", "a"]), 1);
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["SMISMEMBER", "s", "a", "z"]),
        vec![1, 0]
    );
    let mut inter: Vec<String> = q(&mut c, &["SINTER", "s", "t"]);
    inter.sort();
    assert_eq!(inter, ["b", "c"]);
    let mut union: Vec<String> = q(&mut c, &["SUNION", "s", "t"]);
    union.sort();
    assert_eq!(union, ["a", "b", "c", "d"]);
    assert_eq!(q::<Vec<String>>(&mut c, &["SDIFF", "s", "t"]), ["a"]);
    assert_eq!(q::<i64>(&mut c, &["SINTERSTORE", "st", "s", "t"]), 2);
    assert_eq!(
        q::<i64>(&mut c, &["SINTERCARD", "2", "s", "t", "LIMIT", "1"]),
        1
    );
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "s", "t", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "t", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SREM", "s", "b", "zz"]), 1);
    let popped: String = q(&mut c, &["SPOP", "s"]);
    assert_eq!(popped, "c");
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "s"]),
        0,
        "an emptied set is gone"
    );
    let big = "m".repeat(100_000);
    assert_eq!(q::<i64>(&mut c, &["SADD", "big", &big]), 1);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "big", &big]), 1);
    assert_eq!(q::<String>(&mut c, &["TYPE", "big"]), "set");
    q::<()>(&mut c, &["SET", "str", "x"]);
    assert!(err(&mut c, &["SADD", "str", "m"]).contains(WRONGTYPE));
}

#[test]
fn sorted_sets() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(
        q::<i64>(&mut c, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]),
        3
    );
    assert_eq!(
        q::<i64>(&mut c, &["ZADD", "z", "CH", "5", "a", "2", "b"]),
        1
    );
    assert_eq!(q::<i64>(&mut c, &["ZADD", "z", "NX", "9", "a"]), 0);
    assert_eq!(q::<i64>(&mut c, &["ZADD", "z", "GT", "CH", "4", "a"]), 0);
    assert_eq!(q::<f64>(&mut c, &["ZSCORE", "z", "a"]), 5.0);
    assert_eq!(q::<f64>(&mut c, &["ZINCRBY", "z", "1.5", "b"]), 3.5);
    assert_eq!(q::<f64>(&mut c, &["ZADD", "z", "INCR", "1", "c"]), 4.0);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "0", "-1"]),
        ["b", "c", "a"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        ["b", "3.5", "c", "4", "a", "5"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZREVRANGE", "z", "0", "0"]),
        ["a"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGEBYSCORE", "z", "(3.5", "+inf"]),
        ["c", "a"]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &[
                "ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "0", "2"
            ]
        ),
        ["a", "c"]
    );
    assert_eq!(q::<i64>(&mut c, &["ZCOUNT", "z", "4", "5"]), 2);
    assert_eq!(q::<i64>(&mut c, &["ZRANK", "z", "a"]), 2);
    assert_eq!(q::<i64>(&mut c, &["ZREVRANK", "z", "a"]), 0);
    assert_eq!(q::<i64>(&mut c, &["ZCARD", "z"]), 3);
    assert_eq!(q::<Vec<String>>(&mut c, &["ZPOPMIN", "z"]), ["b", "3.5"]);
    assert_eq!(
        q::<i64>(&mut c, &["ZADD", "lex", "0", "a", "0", "b", "0", "c"]),
        3
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGEBYLEX", "lex", "[b", "+"]),
        ["b", "c"]
    );
    assert_eq!(q::<i64>(&mut c, &["ZLEXCOUNT", "lex", "-", "(c"]), 2);
    assert_eq!(q::<i64>(&mut c, &["ZUNIONSTORE", "u", "2", "z", "lex"]), 3);
    assert_eq!(q::<i64>(&mut c, &["ZREMRANGEBYSCORE", "u", "-inf", "0"]), 1);
    assert_eq!(q::<i64>(&mut c, &["ZREM", "u", "a", "nope"]), 1);
    assert!(err(&mut c, &["ZADD", "z", "NX", "XX", "1", "a"]).contains("not compatible"));
    assert!(err(&mut c, &["ZADD", "z", "x", "a"]).contains("not a valid float"));
    assert!(err(&mut c, &["ZRANGEBYSCORE", "z", "x", "1"]).contains("min or max is not a float"));
    assert_eq!(q::<String>(&mut c, &["TYPE", "z"]), "zset");
}

#[test]
fn counters_stay_strings_to_readers() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["INCR", "n"]), 1);
    assert_eq!(q::<i64>(&mut c, &["INCRBY", "n", "41"]), 42);
    assert_eq!(q::<String>(&mut c, &["GET", "n"]), "42");
    assert_eq!(q::<String>(&mut c, &["TYPE", "n"]), "string");
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "n"]), 2);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "n", "0"]), 3);
    assert_eq!(q::<i64>(&mut c, &["DECR", "n"]), 419);
    q::<()>(&mut c, &["SET", "n", "10"]);
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "n", "0.5"]), "10.5");
    assert!(err(&mut c, &["INCR", "n"]).contains("not an integer"));
    q::<()>(&mut c, &["SET", "n", "abc"]);
    assert!(err(&mut c, &["INCR", "n"]).contains("not an integer"));
    q::<()>(&mut c, &["SET", "e", "5", "EX", "100"]);
    assert_eq!(q::<i64>(&mut c, &["INCR", "e"]), 6);
    assert!(q::<i64>(&mut c, &["TTL", "e"]) > 0, "INCR keeps the TTL");
    q::<()>(&mut c, &["HSET", "hx", "f", "v"]);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "hx", "100"]), 1);
    assert!(q::<i64>(&mut c, &["TTL", "hx"]) > 0);
    assert_eq!(
        q::<String>(&mut c, &["TYPE", "hx"]),
        "hash",
        "EXPIRE keeps the type"
    );
    assert!(err(&mut c, &["INCR", "hx"]).contains(WRONGTYPE));
}
