//! Lua scripting on one real node: EVAL/EVALSHA/EVAL_RO, SCRIPT LOAD /
//! EXISTS / FLUSH / KILL, Redis's Lua <-> reply conversions, the `redis`,
//! `cjson` and `bit` libraries, error texts, and that a script is atomic
//! against other clients' commands. `DYNKV_TEST_AGAINST=redis` runs the
//! same assertions against redis-server.

mod common;

use common::{Server, q};
use redis::Value;
use std::time::{Duration, Instant};

/// Runs `args`, which must fail; the error's text as the server sent it.
fn err(c: &mut redis::Connection, args: &[&str]) -> String {
    common::query_err(c, &common::cmd(args))
}

#[test]
fn eval_converts_lua_values_as_redis_does() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["EVAL", "return 3.99", "0"]), 3);
    assert_eq!(q::<i64>(&mut c, &["EVAL", "return true", "0"]), 1);
    assert_eq!(
        q::<Option<String>>(&mut c, &["EVAL", "return false", "0"]),
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["EVAL", "return nil", "0"]),
        None
    );
    assert_eq!(q::<String>(&mut c, &["EVAL", "return 'hi'", "0"]), "hi");
    // An array stops at its first nil.
    let v: Value = q(&mut c, &["EVAL", "return {1, 'two', {3}, nil, 5}", "0"]);
    assert_eq!(
        v,
        Value::Array(vec![
            Value::Int(1),
            Value::BulkString(b"two".to_vec()),
            Value::Array(vec![Value::Int(3)]),
        ])
    );
    let v: Value = q(&mut c, &["EVAL", "return redis.status_reply('FINE')", "0"]);
    assert_eq!(v, Value::SimpleString("FINE".into()));
    let e = err(
        &mut c,
        &["EVAL", "return redis.error_reply('MYCODE went wrong')", "0"],
    );
    assert!(e.contains("MYCODE") && e.contains("went wrong"), "{e}");
    // KEYS and ARGV.
    let v: Vec<String> = q(
        &mut c,
        &[
            "EVAL",
            "return {KEYS[1], KEYS[2], ARGV[1], #ARGV}",
            "2",
            "k1",
            "k2",
            "a1",
            "a2",
        ],
    );
    assert_eq!(v, ["k1", "k2", "a1", "2"]);
}

#[test]
fn redis_call_runs_commands_and_converts_their_replies() {
    let s = Server::start();
    let mut c = s.conn();
    let script = "redis.call('SET', KEYS[1], ARGV[1]); \
                  local n = redis.call('INCRBY', KEYS[1], 5); \
                  return {n, redis.call('GET', KEYS[1]), redis.call('GET', 'absent') == false, \
                          redis.call('SET', KEYS[1], 1)['ok']}";
    let v: Value = q(&mut c, &["EVAL", script, "1", "counter", "10"]);
    assert_eq!(
        v,
        Value::Array(vec![
            Value::Int(15),
            Value::BulkString(b"15".to_vec()),
            Value::Int(1),
            Value::BulkString(b"OK".to_vec()),
        ])
    );
    assert_eq!(q::<String>(&mut c, &["GET", "counter"]), "1");
    // Numbers as arguments are spelled as integers.
    q::<Value>(
        &mut c,
        &["EVAL", "return redis.call('SET', KEYS[1], 42)", "1", "n"],
    );
    assert_eq!(q::<String>(&mut c, &["GET", "n"]), "42");
    // Collections come back as flat arrays, as RESP2 carries them.
    q::<i64>(&mut c, &["HSET", "h", "f", "v"]);
    let v: Vec<String> = q(
        &mut c,
        &["EVAL", "return redis.call('HGETALL', KEYS[1])", "1", "h"],
    );
    assert_eq!(v, ["f", "v"]);
}

#[test]
fn command_errors_raise_and_pcall_catches_them() {
    let s = Server::start();
    let mut c = s.conn();
    q::<String>(&mut c, &["SET", "s", "text"]);
    let e = err(
        &mut c,
        &["EVAL", "return redis.call('INCR', KEYS[1])", "1", "s"],
    );
    assert!(e.contains("not an integer"), "{e}");
    assert!(e.contains("script"), "names the script: {e}");
    let e = err(
        &mut c,
        &["EVAL", "return redis.call('HGET', KEYS[1], 'f')", "1", "s"],
    );
    assert!(e.starts_with("WRONGTYPE"), "{e}");
    // pcall hands the error over as a table.
    let v: String = q(
        &mut c,
        &[
            "EVAL",
            "local r = redis.pcall('INCR', KEYS[1]); return r['err']",
            "1",
            "s",
        ],
    );
    assert!(v.contains("not an integer"), "{v}");
    let e = err(&mut c, &["EVAL", "return redis.call('NOSUCHCMD')", "0"]);
    assert!(
        e.contains("Unknown Redis command called from script"),
        "{e}"
    );
    let e = err(&mut c, &["EVAL", "return redis.call('GET')", "0"]);
    assert!(e.contains("Wrong number of args"), "{e}");
    let e = err(&mut c, &["EVAL", "return redis.call('MULTI')", "0"]);
    assert!(e.contains("not allowed from script"), "{e}");
    let e = err(
        &mut c,
        &["EVAL", "return redis.call('EVAL', 'return 1', '0')", "0"],
    );
    assert!(e.contains("not allowed from script"), "{e}");
    let e = err(&mut c, &["EVAL", "return redis.call('GET', {})", "0"]);
    assert!(e.contains("must be strings or integers"), "{e}");
}

#[test]
fn script_errors_match_redis() {
    let s = Server::start();
    let mut c = s.conn();
    let e = err(&mut c, &["EVAL", "return 1", "-1"]);
    assert!(e.contains("Number of keys can't be negative"), "{e}");
    let e = err(&mut c, &["EVAL", "return 1", "3", "a"]);
    assert!(
        e.contains("Number of keys can't be greater than number of args"),
        "{e}"
    );
    let e = err(&mut c, &["EVAL", "return 1", "x"]);
    assert!(e.contains("not an integer"), "{e}");
    let e = err(&mut c, &["EVAL", "return (", "0"]);
    assert!(e.contains("Error compiling script"), "{e}");
    let e = err(&mut c, &["EVAL", "return undefined_thing", "0"]);
    assert!(
        e.contains("nonexistent global variable 'undefined_thing'"),
        "{e}"
    );
    let e = err(&mut c, &["EVAL", "leak = 1", "0"]);
    assert!(e.contains("user_script:1"), "{e}");
    let e = err(&mut c, &["EVAL", "error('boom')", "0"]);
    assert!(e.contains("boom") && e.contains("user_script:1"), "{e}");
    // Read-only scripts cannot write.
    let e = err(
        &mut c,
        &["EVAL_RO", "return redis.call('SET', 'k', 'v')", "0"],
    );
    assert!(
        e.contains("Write commands are not allowed from read-only scripts"),
        "{e}"
    );
    let e = err(
        &mut c,
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('DEL', 'k')",
            "0",
        ],
    );
    assert!(
        e.contains("Write commands are not allowed from read-only scripts"),
        "{e}"
    );
    assert_eq!(
        q::<i64>(
            &mut c,
            &[
                "EVAL",
                "#!lua flags=no-writes\nreturn redis.call('EXISTS', 'k')",
                "0"
            ]
        ),
        0
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k"]), 0);
}

#[test]
fn script_cache_load_exists_evalsha_flush() {
    let s = Server::start();
    let mut c = s.conn();
    let sha: String = q(&mut c, &["SCRIPT", "LOAD", "return ARGV[1] .. '!'"]);
    assert_eq!(sha.len(), 40);
    assert_eq!(q::<String>(&mut c, &["EVALSHA", &sha, "0", "hey"]), "hey!");
    assert_eq!(
        q::<String>(&mut c, &["EVALSHA", &sha.to_uppercase(), "0", "ho"]),
        "ho!"
    );
    assert_eq!(q::<String>(&mut c, &["EVALSHA_RO", &sha, "0", "x"]), "x!");
    // SCRIPT LOAD answers Redis's digest.
    assert_eq!(
        q::<String>(&mut c, &["SCRIPT", "LOAD", "return 1"]),
        "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
    );
    // EVAL caches what it ran.
    q::<i64>(&mut c, &["EVAL", "return 2", "0"]);
    let two = redis::Script::new("return 2").get_hash().to_string();
    let exists: Vec<i64> = q(&mut c, &["SCRIPT", "EXISTS", &sha, &two, &"0".repeat(40)]);
    assert_eq!(exists, [1, 1, 0]);
    let e = err(&mut c, &["SCRIPT", "LOAD", "return ("]);
    assert!(e.contains("Error compiling script"), "{e}");
    assert_eq!(q::<String>(&mut c, &["SCRIPT", "FLUSH"]), "OK");
    let e = err(&mut c, &["EVALSHA", &sha, "0"]);
    assert!(e.starts_with("NOSCRIPT"), "{e}");
    assert_eq!(q::<Vec<i64>>(&mut c, &["SCRIPT", "EXISTS", &sha]), [0]);
    let e = err(&mut c, &["SCRIPT", "KILL"]);
    assert!(e.starts_with("NOTBUSY"), "{e}");
    // redis-rs's Script: EVALSHA, then SCRIPT LOAD on NOSCRIPT, transparently.
    let script = redis::Script::new("return tonumber(ARGV[1]) * 2");
    let doubled: i64 = script.arg(21).invoke(&mut c).expect("invoke");
    assert_eq!(doubled, 42);
    // FUNCTION LIST / FLUSH, which tools resetting a server send.
    assert_eq!(q::<String>(&mut c, &["FUNCTION", "FLUSH"]), "OK");
    assert!(matches!(q::<Value>(&mut c, &["FUNCTION", "LIST"]), Value::Array(a) if a.is_empty()));
}

#[test]
fn libraries_redis_ships_with_scripts() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(
        q::<String>(&mut c, &["EVAL", "return redis.sha1hex('')", "0"]),
        "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
    let v: String = q(
        &mut c,
        &[
            "EVAL",
            "local t = cjson.decode(ARGV[1]); t.n = t.n + 1; return cjson.encode({n = t.n})",
            "0",
            r#"{"n": 41}"#,
        ],
    );
    assert_eq!(v, r#"{"n":42}"#);
    assert_eq!(
        q::<i64>(&mut c, &["EVAL", "return cjson.decode('[1,2,3]')[3]", "0"]),
        3
    );
    assert_eq!(
        q::<i64>(
            &mut c,
            &[
                "EVAL",
                "return bit.band(12, 10) + bit.bor(1, 2) * 100 + bit.lshift(1, 4) * 1000",
                "0"
            ]
        ),
        8 + 300 + 16000
    );
    assert_eq!(
        q::<String>(&mut c, &["EVAL", "return bit.tohex(255, 4)", "0"]),
        "00ff"
    );
    assert_eq!(
        q::<String>(
            &mut c,
            &[
                "EVAL",
                "return string.format('%d-%s', 7, table.concat({'a','b'}, ','))",
                "0"
            ]
        ),
        "7-a,b"
    );
    // SELECT inside a script selects for the script only.
    q::<Value>(
        &mut c,
        &[
            "EVAL",
            "redis.call('SELECT', 3); return redis.call('SET', 'in3', 'x')",
            "0",
        ],
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "in3"]), 0);
    q::<String>(&mut c, &["SELECT", "3"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "in3"]), 1);
}

/// Four clients run a read-then-write script (GET, then SET of one more)
/// while a fifth INCRs the same key: had any command run between a
/// script's GET and SET, an increment would be lost.
#[test]
fn a_script_is_atomic_against_other_clients() {
    const SCRIPTS_PER_CLIENT: i64 = 150;
    const INCRS: i64 = 300;
    let s = Server::start();
    let read_then_write = "local v = tonumber(redis.call('GET', KEYS[1]) or '0'); \
                           for i = 1, 2000 do v = v + 0 end; \
                           redis.call('SET', KEYS[1], v + 1); return v + 1";
    let mut workers = Vec::new();
    for _ in 0..4 {
        let mut c = s.conn();
        let script = read_then_write.to_owned();
        workers.push(std::thread::spawn(move || {
            for _ in 0..SCRIPTS_PER_CLIENT {
                q::<i64>(&mut c, &["EVAL", &script, "1", "shared"]);
            }
        }));
    }
    let mut c = s.conn();
    workers.push(std::thread::spawn(move || {
        for _ in 0..INCRS {
            q::<i64>(&mut c, &["INCR", "shared"]);
        }
    }));
    for w in workers {
        w.join().expect("worker");
    }
    let mut c = s.conn();
    assert_eq!(
        q::<i64>(&mut c, &["GET", "shared"]),
        4 * SCRIPTS_PER_CLIENT + INCRS
    );
}

#[test]
fn a_busy_script_makes_others_busy_until_script_kill() {
    let s = Server::start();
    let mut busy = s.conn();
    busy.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let runner = std::thread::spawn(move || {
        let started = Instant::now();
        let outcome = err(
            &mut busy,
            &["EVAL", "local i = 0 while true do i = i + 1 end", "0"],
        );
        (outcome, started.elapsed())
    });
    // Another client's command waits for the script, and once the script
    // is past the busy threshold (5 s) is answered BUSY, as in Redis.
    let mut other = s.conn();
    other
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match common::cmd(&["GET", "x"]).query::<Option<String>>(&mut other) {
            // The script had not started yet.
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(v) => panic!("GET kept answering ({v:?}) while a script spun"),
            Err(e) if common::err_text(&e).starts_with("BUSY") => break,
            Err(e) => panic!("GET during a busy script: {e}"),
        }
    }
    let mut admin = s.conn();
    // Retry until the kill lands (NOTBUSY before the script starts).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match common::cmd(&["SCRIPT", "KILL"]).query::<String>(&mut admin) {
            Ok(ok) => {
                assert_eq!(ok, "OK");
                break;
            }
            Err(e) if Instant::now() < deadline && common::err_text(&e).starts_with("NOTBUSY") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("SCRIPT KILL: {e}"),
        }
    }
    let (outcome, _) = runner.join().expect("runner");
    assert!(outcome.contains("killed"), "{outcome}");
    // The node serves again.
    assert_eq!(q::<Option<String>>(&mut other, &["GET", "x"]), None);
}
