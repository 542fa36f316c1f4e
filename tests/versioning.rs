//! DYN.GET / DYN.PUT / DYN.DEL: siblings, contexts, and how
//! plain Redis commands interact with them. dynkv only.

mod common;

use common::{Server, cmd, err_text, is_real_redis};
use redis::{Connection, Value};
use std::collections::BTreeSet;

type Values = Vec<Option<Vec<u8>>>;

/// DYN.GET key [extra...] → (context, values); a `None` value is a
/// deletion concurrent with the others.
fn dyn_get(c: &mut Connection, key: &str, extra: &[&str]) -> (String, Values) {
    let mut args = vec!["DYN.GET", key];
    args.extend_from_slice(extra);
    let reply: Value = cmd(&args)
        .query(c)
        .unwrap_or_else(|e| panic!("DYN.GET {key} failed: {}", err_text(&e)));
    let Value::Array(parts) = reply else {
        panic!("DYN.GET must answer a 2-element array, got {reply:?}");
    };
    assert_eq!(parts.len(), 2, "DYN.GET reply: {parts:?}");
    let ctx = match &parts[0] {
        Value::BulkString(b) => String::from_utf8(b.clone()).expect("context is printable"),
        Value::SimpleString(s) => s.clone(),
        Value::Nil => String::new(),
        other => panic!("DYN.GET context is {other:?}"),
    };
    assert!(
        ctx.bytes().all(|b| b.is_ascii_graphic()),
        "context {ctx:?} is not printable"
    );
    let Value::Array(vals) = &parts[1] else {
        panic!("DYN.GET values are not an array: {:?}", parts[1]);
    };
    let vals = vals
        .iter()
        .map(|v| match v {
            Value::Nil => None,
            Value::BulkString(b) => Some(b.clone()),
            other => panic!("DYN.GET value is {other:?}"),
        })
        .collect();
    (ctx, vals)
}

/// The live (non-deleted) values, sorted, as strings.
fn live(vals: &Values) -> Vec<String> {
    let mut v: Vec<String> = vals
        .iter()
        .flatten()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    v.sort();
    v
}

fn dyn_put(c: &mut Connection, key: &str, ctx: &str, value: &str) {
    let reply: Value = cmd(&["DYN.PUT", key, ctx, value])
        .query(c)
        .unwrap_or_else(|e| panic!("DYN.PUT {key} {ctx:?} {value} failed: {}", err_text(&e)));
    assert_eq!(reply, Value::Okay, "DYN.PUT reply");
}

fn dyn_del(c: &mut Connection, key: &str, ctx: &str) {
    let reply: Value = cmd(&["DYN.DEL", key, ctx])
        .query(c)
        .unwrap_or_else(|e| panic!("DYN.DEL {key} {ctx:?} failed: {}", err_text(&e)));
    assert!(
        matches!(reply, Value::Okay | Value::Int(_)),
        "DYN.DEL reply: {reply:?}"
    );
}

fn get(c: &mut Connection, key: &str) -> Option<String> {
    cmd(&["GET", key]).query(c).unwrap()
}

fn err(c: &mut Connection, args: &[&str]) -> String {
    common::query_err(c, &cmd(args))
}

fn strs(xs: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = xs.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn missing_key() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    let (_ctx, vals) = dyn_get(&mut c, "nokey", &[]);
    assert!(vals.is_empty(), "{vals:?}");
}

#[test]
fn empty_context_puts_become_siblings() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    dyn_put(&mut c, "k", "", "v1");
    dyn_put(&mut c, "k", "", "v2");
    let (ctx, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(vals.len(), 2, "{vals:?}");
    assert_eq!(live(&vals), strs(&["v1", "v2"]));
    assert!(!ctx.is_empty(), "context of an existing key is empty");
    // A put with that context supersedes both.
    dyn_put(&mut c, "k", &ctx, "v3");
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(vals, vec![Some(b"v3".to_vec())]);
    assert_eq!(get(&mut c, "k").as_deref(), Some("v3"));
    // A third blind put adds a sibling again.
    dyn_put(&mut c, "k", "", "v4");
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(live(&vals), strs(&["v3", "v4"]));
}

#[test]
fn same_context_twice_keeps_both_writes() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    dyn_put(&mut c, "k", "", "base");
    let (ctx, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(vals, vec![Some(b"base".to_vec())]);
    // Two clients, same context, same coordinator: neither write may be lost.
    dyn_put(&mut c, "k", &ctx, "a");
    let mut c2 = s.conn();
    dyn_put(&mut c2, "k", &ctx, "b");
    let (ctx2, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(live(&vals), strs(&["a", "b"]));
    assert_eq!(vals.len(), 2, "{vals:?}");
    // Three writers with the same (new) context.
    for v in ["x", "y", "z"] {
        dyn_put(&mut c, "k", &ctx2, v);
    }
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(live(&vals), strs(&["x", "y", "z"]));
}

#[test]
fn plain_del_is_visible_to_dyn_get() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    let _: () = cmd(&["SET", "k", "v"]).query(&mut c).unwrap();
    let n: i64 = cmd(&["DEL", "k"]).query(&mut c).unwrap();
    assert_eq!(n, 1);
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert!(
        vals.iter().all(Option::is_none),
        "deleted key still has values: {vals:?}"
    );
    assert_eq!(get(&mut c, "k"), None);
    // Deleting siblings with plain DEL removes them all.
    dyn_put(&mut c, "s", "", "1");
    dyn_put(&mut c, "s", "", "2");
    let n: i64 = cmd(&["DEL", "s"]).query(&mut c).unwrap();
    assert_eq!(n, 1);
    let (ctx, vals) = dyn_get(&mut c, "s", &[]);
    assert!(vals.iter().all(Option::is_none), "{vals:?}");
    let exists: i64 = cmd(&["EXISTS", "s"]).query(&mut c).unwrap();
    assert_eq!(exists, 0);
    // Writing after the delete with its context gives one clean value.
    dyn_put(&mut c, "s", &ctx, "3");
    let (_, vals) = dyn_get(&mut c, "s", &[]);
    assert_eq!(vals, vec![Some(b"3".to_vec())]);
}

#[test]
fn dyn_del_with_context() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    dyn_put(&mut c, "k", "", "a");
    dyn_put(&mut c, "k", "", "b");
    let (ctx, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(vals.len(), 2);
    dyn_del(&mut c, "k", &ctx);
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert!(vals.iter().all(Option::is_none), "{vals:?}");
    assert_eq!(get(&mut c, "k"), None);
    let exists: i64 = cmd(&["EXISTS", "k"]).query(&mut c).unwrap();
    assert_eq!(exists, 0);

    // A delete with an older context only removes what it saw.
    dyn_put(&mut c, "p", "", "seen");
    let (ctx1, _) = dyn_get(&mut c, "p", &[]);
    dyn_put(&mut c, "p", "", "unseen");
    dyn_del(&mut c, "p", &ctx1);
    let (_, vals) = dyn_get(&mut c, "p", &[]);
    assert_eq!(
        live(&vals),
        strs(&["unseen"]),
        "DYN.DEL removed a version it had not seen (or kept one it had): {vals:?}"
    );
}

#[test]
fn contexts_from_different_reads_in_any_order() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    for (key, newer_first) in [("k1", true), ("k2", false)] {
        dyn_put(&mut c, key, "", "a");
        let (ctx1, _) = dyn_get(&mut c, key, &[]);
        dyn_put(&mut c, key, "", "b");
        let (ctx2, vals) = dyn_get(&mut c, key, &[]);
        assert_eq!(live(&vals), strs(&["a", "b"]));
        if newer_first {
            dyn_put(&mut c, key, &ctx2, "c");
            dyn_put(&mut c, key, &ctx1, "d");
        } else {
            dyn_put(&mut c, key, &ctx1, "d");
            let (_, vals) = dyn_get(&mut c, key, &[]);
            assert_eq!(live(&vals), strs(&["b", "d"]), "{key}");
            dyn_put(&mut c, key, &ctx2, "c");
        }
        let (ctx3, vals) = dyn_get(&mut c, key, &[]);
        assert_eq!(live(&vals), strs(&["c", "d"]), "{key}");
        // Reconcile.
        dyn_put(&mut c, key, &ctx3, "cd");
        let (_, vals) = dyn_get(&mut c, key, &[]);
        assert_eq!(vals, vec![Some(b"cd".to_vec())], "{key}");
        // Re-using the old contexts now only adds siblings; nothing errors.
        dyn_put(&mut c, key, &ctx1, "late1");
        let (_, vals) = dyn_get(&mut c, key, &[]);
        assert_eq!(live(&vals), strs(&["cd", "late1"]), "{key}");
    }
}

#[test]
fn get_picks_a_stable_winner() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    for i in 0..5 {
        dyn_put(&mut c, "k", "", &format!("v{i}"));
        // Distinct coordinator timestamps, so "latest" is well defined.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(vals.len(), 5);
    let first = get(&mut c, "k").expect("GET of a key with siblings is nil");
    assert!(live(&vals).contains(&first), "{first} is not a sibling");
    for _ in 0..20 {
        assert_eq!(get(&mut c, "k").as_deref(), Some(first.as_str()));
    }
    let mut c2 = s.conn();
    assert_eq!(get(&mut c2, "k").as_deref(), Some(first.as_str()));
    let mget: Vec<Option<String>> = cmd(&["MGET", "k", "k"]).query(&mut c2).unwrap();
    assert_eq!(mget, vec![Some(first.clone()), Some(first.clone())]);
    let strlen: i64 = cmd(&["STRLEN", "k"]).query(&mut c2).unwrap();
    assert_eq!(strlen, first.len() as i64);
    // The winner is the latest write (coordinator timestamp).
    assert_eq!(first, "v4", "GET should return the latest sibling");
}

#[test]
fn set_supersedes_siblings() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    dyn_put(&mut c, "k", "", "a");
    dyn_put(&mut c, "k", "", "b");
    dyn_put(&mut c, "k", "", "c");
    let _: () = cmd(&["SET", "k", "final"]).query(&mut c).unwrap();
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(vals, vec![Some(b"final".to_vec())]);
    // Also for the other writing commands.
    dyn_put(&mut c, "n", "", "1");
    dyn_put(&mut c, "n", "", "2");
    let _: i64 = cmd(&["INCR", "n"]).query(&mut c).unwrap();
    let (_, vals) = dyn_get(&mut c, "n", &[]);
    assert_eq!(vals.len(), 1, "INCR left siblings: {vals:?}");
    dyn_put(&mut c, "m", "", "1");
    dyn_put(&mut c, "m", "", "2");
    let _: () = cmd(&["MSET", "m", "x"]).query(&mut c).unwrap();
    let (_, vals) = dyn_get(&mut c, "m", &[]);
    assert_eq!(vals, vec![Some(b"x".to_vec())]);
}

#[test]
fn dyn_values_are_binary_safe_and_visible_to_get() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    let value: Vec<u8> = (0..=255u8).collect();
    let ok: Value = redis::cmd("DYN.PUT")
        .arg("bin")
        .arg("")
        .arg(&value)
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, Value::Okay);
    let got: Vec<u8> = redis::cmd("GET").arg("bin").query(&mut c).unwrap();
    assert_eq!(got, value);
    let (_, vals) = dyn_get(&mut c, "bin", &[]);
    assert_eq!(vals, vec![Some(value)]);
    // An empty value is a value, not a deletion.
    dyn_put(&mut c, "empty", "", "");
    let (_, vals) = dyn_get(&mut c, "empty", &[]);
    assert_eq!(vals, vec![Some(Vec::new())]);
}

#[test]
fn malformed_context_is_an_error() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    dyn_put(&mut c, "k", "", "v");
    let (ctx, _) = dyn_get(&mut c, "k", &[]);
    let truncated = &ctx[..ctx.len() / 2];
    let mut bad = vec!["!!!", "not a context", "%%%%", "\u{1}\u{2}"];
    if ctx.len() >= 8 {
        bad.push(truncated);
    }
    for b in &bad {
        let msg = err(&mut c, &["DYN.PUT", "k", b, "x"]);
        assert!(msg.starts_with("ERR"), "DYN.PUT with context {b:?}: {msg}");
        let msg = err(&mut c, &["DYN.DEL", "k", b]);
        assert!(msg.starts_with("ERR"), "DYN.DEL with context {b:?}: {msg}");
    }
    // Nothing changed.
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(vals, vec![Some(b"v".to_vec())]);
}

/// Found by fuzzing the context token: a context claiming a huge counter
/// for the node that coordinates the write moved the node's one dot
/// counter (shared by every key) to the end of its range, or overflowed it.
/// Such a context is refused, and the node numbers its next write as if the
/// forged one had never been sent.
#[test]
fn forged_context_counters_are_refused() {
    use dynkv::core::{ClusterSecret, MAX_COUNTER, VersionVector, decode_context, encode_context};
    if is_real_redis() {
        return;
    }
    // Signed with the node's real key, as only a holder of the cluster
    // secret could: the counter check must hold even behind the MAC.
    let s = Server::start_with(&["--cluster-secret", "versioning-test"]);
    let key = ClusterSecret::new("versioning-test")
        .expect("valid secret")
        .context_key();
    let decode = |token: &str| decode_context(token.as_bytes(), &key).expect("own token decodes");
    let mut c = s.conn();
    dyn_put(&mut c, "k", "", "v");
    let (ctx, _) = dyn_get(&mut c, "k", &[]);
    let (actor, first) = decode(&ctx)
        .entries()
        .map(|(node, counter)| (node.clone(), counter))
        .next()
        .expect("a written key has a history");
    for claim in [MAX_COUNTER, u64::MAX] {
        let forged: VersionVector = [(actor.clone(), claim)].into_iter().collect();
        let token = encode_context(&forged, &key);
        for key in ["k", "fresh"] {
            let msg = err(&mut c, &["DYN.PUT", key, &token, "x"]);
            assert!(
                msg.starts_with("ERR"),
                "DYN.PUT {key} claiming {claim}: {msg}"
            );
        }
    }
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(vals, vec![Some(b"v".to_vec())]);
    dyn_put(&mut c, "other", "", "w");
    let (ctx, _) = dyn_get(&mut c, "other", &[]);
    assert_eq!(
        decode(&ctx).get(&actor),
        first + 1,
        "the node's counter moved"
    );
}

#[test]
fn quorum_options() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    let ok: Value = cmd(&["DYN.PUT", "k", "", "v", "W", "1"])
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, Value::Okay);
    let (ctx, vals) = dyn_get(&mut c, "k", &["R", "1"]);
    assert_eq!(vals, vec![Some(b"v".to_vec())]);
    let (_, vals) = dyn_get(&mut c, "k", &["r", "1"]);
    assert_eq!(vals.len(), 1);
    for bad in ["0", "99999", "-1", "abc", "18446744073709551617"] {
        let msg = err(&mut c, &["DYN.GET", "k", "R", bad]);
        assert!(msg.starts_with("ERR"), "DYN.GET R {bad}: {msg}");
        let msg = err(&mut c, &["DYN.PUT", "k", &ctx, "x", "W", bad]);
        assert!(msg.starts_with("ERR"), "DYN.PUT W {bad}: {msg}");
        let msg = err(&mut c, &["DYN.DEL", "k", &ctx, "W", bad]);
        assert!(msg.starts_with("ERR"), "DYN.DEL W {bad}: {msg}");
    }
    // Rejected puts/deletes did not happen.
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert_eq!(vals, vec![Some(b"v".to_vec())]);
    let ok: Value = cmd(&["DYN.DEL", "k", &ctx, "W", "1"])
        .query(&mut c)
        .unwrap();
    assert!(matches!(ok, Value::Okay | Value::Int(_)), "{ok:?}");
    let (_, vals) = dyn_get(&mut c, "k", &[]);
    assert!(vals.iter().all(Option::is_none), "{vals:?}");
    // Unknown option / missing value.
    let msg = err(&mut c, &["DYN.GET", "k", "FOO", "1"]);
    assert!(msg.starts_with("ERR"), "{msg}");
    let msg = err(&mut c, &["DYN.GET", "k", "R"]);
    assert!(msg.starts_with("ERR"), "{msg}");
}

#[test]
fn arity_errors() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut c = s.conn();
    for (args, name) in [
        (&["DYN.GET"][..], "dyn.get"),
        (&["DYN.PUT", "k", ""], "dyn.put"),
        (&["DYN.DEL", "k"], "dyn.del"),
    ] {
        let msg = err(&mut c, args);
        assert_eq!(
            msg,
            format!("ERR wrong number of arguments for '{name}' command")
        );
    }
    // The DYN.* commands are listed by COMMAND.
    let list: Vec<String> = cmd(&["COMMAND", "LIST"]).query(&mut c).unwrap();
    let set: BTreeSet<String> = list.into_iter().collect();
    for name in ["dyn.get", "dyn.put", "dyn.del"] {
        assert!(set.contains(name), "COMMAND LIST lacks {name}");
    }
}
