//! Acknowledged writes survive a crash (`--fsync always` + SIGKILL) and a
//! graceful shutdown (SIGTERM). Against real Redis
//! (`DYNKV_TEST_AGAINST=redis`) `--fsync P` becomes `--appendonly yes
//! --appendfsync P`, which checks the expectations themselves.

mod common;

use common::{Server, cmd, is_real_redis};
use redis::{Connection, Value};
use std::time::{Duration, Instant};

const THREADS: usize = 8;
const PER_THREAD: usize = 1250; // 10,000 in all

fn key(t: usize, i: usize) -> String {
    format!("dur:{t}:{i}")
}

fn value(t: usize, i: usize) -> String {
    format!("value-{t}-{i}-{}", "x".repeat(i % 50))
}

/// Writes THREADS * PER_THREAD keys over concurrent connections, one SET
/// at a time, asserting that each is acknowledged with +OK.
fn write_all(s: &Server) {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let mut c = s.conn();
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let reply: Value = redis::cmd("SET")
                        .arg(key(t, i))
                        .arg(value(t, i))
                        .query(&mut c)
                        .unwrap_or_else(|e| panic!("SET {} failed: {e}", key(t, i)));
                    assert_eq!(reply, Value::Okay, "SET {}", key(t, i));
                }
            });
        }
    });
    eprintln!(
        "wrote {} keys in {:?}",
        THREADS * PER_THREAD,
        start.elapsed()
    );
}

/// Checks every key written by [`write_all`], in MGET batches.
fn check_all(c: &mut Connection) {
    let mut missing = Vec::new();
    for t in 0..THREADS {
        for chunk in (0..PER_THREAD).collect::<Vec<_>>().chunks(250) {
            let mut m = redis::cmd("MGET");
            for &i in chunk {
                m.arg(key(t, i));
            }
            let got: Vec<Option<String>> = m.query(c).unwrap();
            for (&i, g) in chunk.iter().zip(got) {
                if g.as_deref() != Some(value(t, i).as_str()) {
                    missing.push((key(t, i), g));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost or wrong after restart; first few: {:?}",
        missing.len(),
        THREADS * PER_THREAD,
        &missing[..missing.len().min(10)]
    );
    let n: i64 = cmd(&["DBSIZE"]).query(c).unwrap();
    assert!(n >= (THREADS * PER_THREAD) as i64, "DBSIZE {n}");
}

/// Some extra state that must also survive: deletes, counters, TTLs.
fn write_extras(c: &mut Connection) {
    let _: () = cmd(&["SET", "extra:deleted", "gone"]).query(c).unwrap();
    let n: i64 = cmd(&["DEL", "extra:deleted"]).query(c).unwrap();
    assert_eq!(n, 1);
    // Overwrite one of the bulk keys, then restore it, to check ordering.
    for i in 0..=100 {
        let _: i64 = cmd(&["INCR", "extra:counter"]).query(c).unwrap();
        let _: () = cmd(&["SET", "extra:last", &i.to_string()])
            .query(c)
            .unwrap();
    }
    let _: () = cmd(&["SET", "extra:ttl", "v", "EX", "1000"])
        .query(c)
        .unwrap();
    let _: () = cmd(&["SET", "extra:shortttl", "v", "PX", "200"])
        .query(c)
        .unwrap();
    let _: i64 = cmd(&["APPEND", "extra:append", "abc"]).query(c).unwrap();
    let _: i64 = cmd(&["APPEND", "extra:append", "def"]).query(c).unwrap();
}

fn check_extras(c: &mut Connection) {
    let deleted: Option<String> = cmd(&["GET", "extra:deleted"]).query(c).unwrap();
    assert_eq!(deleted, None, "a deleted key came back after restart");
    let counter: Option<String> = cmd(&["GET", "extra:counter"]).query(c).unwrap();
    assert_eq!(counter.as_deref(), Some("101"));
    let last: Option<String> = cmd(&["GET", "extra:last"]).query(c).unwrap();
    assert_eq!(last.as_deref(), Some("100"));
    let ttl: i64 = cmd(&["TTL", "extra:ttl"]).query(c).unwrap();
    assert!(
        (900..=1000).contains(&ttl),
        "TTL lost or wrong after restart: {ttl}"
    );
    let short: Option<String> = cmd(&["GET", "extra:shortttl"]).query(c).unwrap();
    assert_eq!(short, None, "an expired key came back after restart");
    let app: Option<String> = cmd(&["GET", "extra:append"]).query(c).unwrap();
    assert_eq!(app.as_deref(), Some("abcdef"));
}

#[test]
fn fsync_always_survives_sigkill() {
    let mut s = Server::start_with(&["--fsync", "always"]);
    write_all(&s);
    {
        let mut c = s.conn();
        write_extras(&mut c);
    }
    // Make sure the short TTL has passed before the crash.
    std::thread::sleep(Duration::from_millis(300));
    s.kill9();
    s.restart();
    let mut c = s.conn();
    check_all(&mut c);
    check_extras(&mut c);

    // Writes after the restart persist too, across a second crash.
    let _: () = cmd(&["SET", "after:restart", "yes"]).query(&mut c).unwrap();
    drop(c);
    s.kill9();
    s.restart();
    let mut c = s.conn();
    let v: Option<String> = cmd(&["GET", "after:restart"]).query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("yes"));
    let v: Option<String> = cmd(&["GET", &key(3, 7)]).query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some(value(3, 7).as_str()));
}

#[test]
fn graceful_sigterm_keeps_data() {
    // dynkv with its default fsync policy; Redis needs its AOF turned on.
    let mut s = if is_real_redis() {
        Server::start_with(&["--fsync", "everysec"])
    } else {
        Server::start()
    };
    write_all(&s);
    {
        let mut c = s.conn();
        write_extras(&mut c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = s.terminate();
    assert!(
        status.success(),
        "dynkv should exit 0 on SIGTERM, got {status}\n--- stderr ---\n{}",
        s.stderr()
    );
    s.restart();
    let mut c = s.conn();
    check_all(&mut c);
    check_extras(&mut c);
}

#[test]
fn siblings_and_tombstones_survive_sigkill() {
    if is_real_redis() {
        return;
    }
    let mut s = Server::start_with(&["--fsync", "always"]);
    let mut c = s.conn();
    let ok: Value = cmd(&["DYN.PUT", "sib", "", "a"]).query(&mut c).unwrap();
    assert_eq!(ok, Value::Okay);
    let ok: Value = cmd(&["DYN.PUT", "sib", "", "b"]).query(&mut c).unwrap();
    assert_eq!(ok, Value::Okay);
    let _: () = cmd(&["SET", "tomb", "x"]).query(&mut c).unwrap();
    let _: i64 = cmd(&["DEL", "tomb"]).query(&mut c).unwrap();
    drop(c);
    s.kill9();
    s.restart();
    let mut c = s.conn();
    let reply: Value = cmd(&["DYN.GET", "sib"]).query(&mut c).unwrap();
    let Value::Array(parts) = reply else {
        panic!("DYN.GET: {reply:?}");
    };
    let Value::Array(vals) = &parts[1] else {
        panic!("DYN.GET values: {:?}", parts[1]);
    };
    let mut got: Vec<String> = vals
        .iter()
        .map(|v| redis::from_redis_value_ref::<String>(v).unwrap())
        .collect();
    got.sort();
    assert_eq!(got, vec!["a".to_string(), "b".to_string()]);
    let tomb: Option<String> = cmd(&["GET", "tomb"]).query(&mut c).unwrap();
    assert_eq!(tomb, None);
}
