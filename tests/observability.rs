//! Observability a Redis operator expects, checked on a real node with
//! real clients: Prometheus `/metrics` (every family at start, only on
//! `/metrics`), INFO fields and sections, SLOWLOG, LATENCY, MEMORY USAGE,
//! MONITOR, COMMAND DOCS arguments.

mod common;

use common::{Reply, Server, cmd, is_real_redis, query_err};
use dynkv::obs::catalog::{FAMILIES, Kind};
use redis::{Connection, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn q<T: redis::FromRedisValue>(c: &mut Connection, args: &[&str]) -> T {
    match cmd(args).query::<T>(c) {
        Ok(v) => v,
        Err(e) => panic!("{args:?} failed: {}", common::err_text(&e)),
    }
}

/// `GET path` on the metrics port: (status code, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// INFO text as field → value.
fn info(c: &mut Connection, section: &[&str]) -> (String, HashMap<String, String>) {
    let mut args = vec!["INFO"];
    args.extend_from_slice(section);
    let text: String = q(c, &args);
    let fields = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    (text, fields)
}

#[test]
fn fresh_node_exports_every_documented_family_at_zero_and_only_on_metrics() {
    if is_real_redis() {
        return;
    }
    // Started by hand, not through the harness: its readiness PING would
    // already be a command. The metrics port answers before the client port.
    let ports = common::free_ports(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dynkv"))
        .args(["--bind", "127.0.0.1", "--node-name", "fresh", "--data-dir"])
        .arg(dir.path())
        .args(["--port", &ports[0].to_string()])
        .args(["--cluster-port", &ports[1].to_string()])
        .args(["--metrics-port", &ports[2].to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn dynkv");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", ports[2])) {
            let _ = s.write_all(b"");
            let (status, body) = http_get(ports[2], "/metrics");
            assert_eq!(status, 200, "{body}");
            break body;
        }
        assert!(Instant::now() < deadline, "metrics port never opened");
        std::thread::sleep(Duration::from_millis(20));
    };
    for f in FAMILIES {
        assert!(
            body.contains(&format!("# HELP {} ", f.name)),
            "no HELP for {} in:\n{body}",
            f.name
        );
        let (ty, sample) = match f.kind {
            Kind::Counter => ("counter", f.name.to_string()),
            Kind::Gauge => ("gauge", f.name.to_string()),
            Kind::Histogram => ("histogram", format!("{}_count", f.name)),
        };
        assert!(
            body.contains(&format!("# TYPE {} {ty}", f.name)),
            "no TYPE {ty} for {}",
            f.name
        );
        let zero = body.lines().any(|l| {
            l.starts_with(&sample) && l[sample.len()..].starts_with([' ', '{']) && l.ends_with(" 0")
        });
        assert!(
            zero,
            "no sample of {} at 0 on a fresh node:\n{body}",
            f.name
        );
    }
    // One series per command, by name.
    assert!(
        body.contains("dynkv_command_duration_seconds_bucket{command=\"get\",le=\"0.0001\"} 0")
    );
    for path in ["/", "/foo", "/metricsx", "/metrics/x"] {
        assert_eq!(http_get(ports[2], path).0, 404, "{path}");
    }
    // Commands show up in their own histogram.
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", ports[0])).expect("url");
    let mut c = loop {
        if let Ok(c) = client.get_connection() {
            break c;
        }
        assert!(Instant::now() < deadline, "client port never opened");
        std::thread::sleep(Duration::from_millis(20));
    };
    let _: () = q(&mut c, &["SET", "k", "v"]);
    let _: Option<String> = q(&mut c, &["GET", "k"]);
    let (_, body) = http_get(ports[2], "/metrics");
    assert!(
        body.contains("dynkv_command_duration_seconds_count{command=\"get\"} 1"),
        "{body}"
    );
}

#[test]
fn info_has_the_fields_dashboards_read_and_sections_select() {
    let server = Server::start();
    let mut c = server.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    let _: Option<String> = q(&mut c, &["GET", "a"]);
    let _: Option<String> = q(&mut c, &["GET", "missing"]);
    let _: Vec<Option<String>> = q(&mut c, &["MGET", "a", "missing", "a"]);
    let _ = query_err(&mut c, &cmd(&["INCR", "a", "b"]));
    let _ = query_err(&mut c, &cmd(&["NOSUCHCOMMAND"]));

    let (text, f) = info(&mut c, &[]);
    assert_eq!(f["keyspace_hits"], "3", "{text}");
    assert_eq!(f["keyspace_misses"], "2", "{text}");
    let run_id = &f["run_id"];
    assert!(
        run_id.len() == 40 && run_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{run_id}"
    );
    for field in [
        "instantaneous_ops_per_sec",
        "instantaneous_input_kbps",
        "instantaneous_output_kbps",
        "expired_keys",
        "evicted_keys",
        "used_memory_peak",
        "used_memory_peak_human",
        "used_cpu_sys",
        "used_cpu_user",
        "used_cpu_sys_children",
        "used_cpu_user_children",
        "errorstat_ERR",
    ] {
        assert!(f.contains_key(field), "INFO lacks {field}:\n{text}");
    }
    assert!(f["total_net_input_bytes"].parse::<u64>().expect("int") > 0);
    assert!(f["total_net_output_bytes"].parse::<u64>().expect("int") > 0);
    assert!(f["used_memory_peak"].parse::<u64>().expect("int") > 0);
    // commandstats is not a default section; it is in `all` and by name.
    assert!(!text.contains("# Commandstats"), "{text}");
    let (cs, f) = info(&mut c, &["commandstats"]);
    assert!(cs.starts_with("# Commandstats\r\n"), "{cs}");
    assert!(!cs.contains("# Server"), "{cs}");
    let get = &f["cmdstat_get"];
    assert!(
        get.starts_with("calls=2,usec=") && get.ends_with(",rejected_calls=0,failed_calls=0"),
        "{get}"
    );
    assert!(
        f["cmdstat_incr"].ends_with("rejected_calls=1,failed_calls=0"),
        "{cs}"
    );
    let (_, f) = info(&mut c, &["errorstats"]);
    assert_eq!(f["errorstat_ERR"], "count=2");
    for all in ["all", "everything"] {
        let (t, _) = info(&mut c, &[all]);
        for s in [
            "# Server",
            "# Stats",
            "# Cpu",
            "# Commandstats",
            "# Errorstats",
            "# Keyspace",
        ] {
            assert!(t.contains(s), "INFO {all} lacks {s}");
        }
    }
    let (t, _) = info(&mut c, &["cpu", "memory"]);
    assert!(
        t.starts_with("# Memory") && t.contains("# Cpu") && !t.contains("# Stats"),
        "{t}"
    );

    // Instantaneous ops reflect a burst of commands once sampled (every
    // 100 ms, mean of the last 16 samples).
    for _ in 0..300 {
        let _: String = q(&mut c, &["PING"]);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (_, f) = info(&mut c, &["stats"]);
    assert!(
        f["instantaneous_ops_per_sec"].parse::<f64>().expect("num") > 0.0,
        "{f:?}"
    );

    // An expired key is counted once the sweeper (every second) removes it.
    let _: () = q(&mut c, &["SET", "short-lived", "v", "PX", "50"]);
    common::cluster::wait_until(Duration::from_secs(10), "expired_keys >= 1", || {
        info(&mut c, &["stats"]).1["expired_keys"] != "0"
    });

    let _: () = q(&mut c, &["CONFIG", "RESETSTAT"]);
    let (t, f) = info(&mut c, &["all"]);
    assert_eq!(f["keyspace_hits"], "0");
    assert_eq!(f["keyspace_misses"], "0");
    assert!(!f.contains_key("errorstat_ERR"), "{t}");
    assert!(!f.contains_key("cmdstat_get"), "{t}");
}

fn slowlog(c: &mut Connection, n: &str) -> Vec<Value> {
    q(c, &["SLOWLOG", "GET", n])
}

#[test]
fn slowlog_records_trims_and_redacts() {
    let server = Server::start();
    let mut c = server.conn();
    let cfg: HashMap<String, String> = q(&mut c, &["CONFIG", "GET", "slowlog-*"]);
    assert_eq!(cfg["slowlog-log-slower-than"], "10000");
    assert_eq!(cfg["slowlog-max-len"], "128");
    let _: () = q(&mut c, &["CLIENT", "SETNAME", "slowpoke"]);
    let _: () = q(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let long = "x".repeat(200);
    let _: () = q(&mut c, &["SET", "k", &long]);
    let mut many = vec!["DEL"];
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    many.extend(keys.iter().map(String::as_str));
    let _: i64 = q(&mut c, &many);
    let _ = query_err(&mut c, &cmd(&["AUTH", "secret-password"]));

    let entries = slowlog(&mut c, "-1");
    assert!(entries.len() >= 4, "{entries:?}");
    let as_strings = |v: &Value| -> Vec<String> {
        match v {
            Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => panic!("arg {other:?}"),
                })
                .collect(),
            other => panic!("args {other:?}"),
        }
    };
    let find = |name: &str| -> Vec<Value> {
        entries
            .iter()
            .find_map(|e| match e {
                Value::Array(f) if as_strings(&f[3])[0].eq_ignore_ascii_case(name) => {
                    Some(f.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {name} entry in {entries:?}"))
    };
    let set = find("SET");
    assert_eq!(set.len(), 6, "{set:?}");
    assert!(
        matches!(set[0], Value::Int(_))
            && matches!(set[1], Value::Int(_))
            && matches!(set[2], Value::Int(_))
    );
    let args = as_strings(&set[3]);
    assert_eq!(args[2], format!("{}... (72 more bytes)", "x".repeat(128)));
    let Value::BulkString(addr) = &set[4] else {
        panic!("{set:?}")
    };
    assert!(String::from_utf8_lossy(addr).starts_with("127.0.0.1:"));
    assert_eq!(set[5], Value::BulkString(b"slowpoke".to_vec()));
    let del = as_strings(&find("DEL")[3]);
    assert_eq!(del.len(), 32);
    assert_eq!(del[31], "... (10 more arguments)");
    let auth = as_strings(&find("AUTH")[3]);
    assert_eq!(auth, vec!["AUTH", "(redacted)"]);
    // Newest first, ids increasing.
    let ids: Vec<i64> = entries
        .iter()
        .map(|e| match e {
            Value::Array(f) => match f[0] {
                Value::Int(i) => i,
                _ => panic!(),
            },
            _ => panic!(),
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert_eq!(slowlog(&mut c, "2").len(), 2);
    assert!(
        query_err(&mut c, &cmd(&["SLOWLOG", "GET", "-2"])).contains("greater than or equal to -1")
    );

    let _: () = q(&mut c, &["CONFIG", "SET", "slowlog-max-len", "3"]);
    assert_eq!(q::<i64>(&mut c, &["SLOWLOG", "LEN"]), 3);
    let _: () = q(&mut c, &["SLOWLOG", "RESET"]);
    // The RESET itself is logged after it ran (threshold 0), as in Redis.
    assert!(q::<i64>(&mut c, &["SLOWLOG", "LEN"]) <= 1);
    let _: () = q(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
    let _: () = q(&mut c, &["SLOWLOG", "RESET"]);
    let _: () = q(&mut c, &["SET", "k", "v"]);
    assert_eq!(q::<i64>(&mut c, &["SLOWLOG", "LEN"]), 0);
    assert!(
        query_err(&mut c, &cmd(&["CONFIG", "SET", "slowlog-max-len", "-5"]))
            .contains("slowlog-max-len")
    );
}

#[test]
fn latency_monitor_records_spikes_over_threshold() {
    let server = Server::start();
    let mut c = server.conn();
    let cfg: HashMap<String, String> = q(&mut c, &["CONFIG", "GET", "latency-monitor-threshold"]);
    assert_eq!(cfg["latency-monitor-threshold"], "0");
    // Off by default: nothing is recorded however slow.
    let big = "v".repeat(8 << 20);
    let _: () = q(&mut c, &["SET", "big", &big]);
    assert_eq!(q::<Vec<Value>>(&mut c, &["LATENCY", "LATEST"]), vec![]);
    let _: () = q(&mut c, &["CONFIG", "SET", "latency-monitor-threshold", "1"]);
    // A multi-megabyte write takes well over a millisecond.
    let start = Instant::now();
    for _ in 0..3 {
        let _: () = q(&mut c, &["SET", "big", &big]);
    }
    assert!(start.elapsed() >= Duration::from_millis(3));
    let latest: Vec<Value> = q(&mut c, &["LATENCY", "LATEST"]);
    let Some(Value::Array(ev)) = latest.first() else {
        panic!("{latest:?}")
    };
    assert_eq!(ev[0], Value::BulkString(b"command".to_vec()), "{ev:?}");
    assert!(
        matches!((&ev[2], &ev[3]), (Value::Int(l), Value::Int(m)) if *l >= 1 && m >= l),
        "{ev:?}"
    );
    let history: Vec<Vec<i64>> = q(&mut c, &["LATENCY", "HISTORY", "command"]);
    assert!(!history.is_empty() && history.iter().all(|s| s.len() == 2 && s[1] >= 1));
    let doctor: String = q(&mut c, &["LATENCY", "DOCTOR"]);
    assert!(doctor.contains("command"), "{doctor}");
    assert_eq!(q::<i64>(&mut c, &["LATENCY", "RESET"]), 1);
    assert_eq!(
        q::<Vec<Value>>(&mut c, &["LATENCY", "HISTORY", "command"]),
        vec![]
    );
}

#[test]
fn memory_usage_counts_the_stored_object() {
    let server = Server::start();
    let mut c = server.conn();
    let _: () = q(&mut c, &["SET", "small", "v"]);
    let _: () = q(&mut c, &["SET", "large", &"v".repeat(10_000)]);
    let small: i64 = q(&mut c, &["MEMORY", "USAGE", "small"]);
    let large: i64 = q(&mut c, &["MEMORY", "USAGE", "large", "SAMPLES", "5"]);
    assert!((2..1000).contains(&small), "{small}");
    assert!((10_000..11_000).contains(&large), "{large}");
    assert_eq!(q::<Value>(&mut c, &["MEMORY", "USAGE", "nope"]), Value::Nil);
    let _: i64 = q(&mut c, &["DEL", "small"]);
    assert_eq!(
        q::<Value>(&mut c, &["MEMORY", "USAGE", "small"]),
        Value::Nil
    );
    let stats: HashMap<String, Value> = q(&mut c, &["MEMORY", "STATS"]);
    assert!(stats.contains_key("peak.allocated"), "{stats:?}");
    let _: String = q(&mut c, &["MEMORY", "DOCTOR"]);
}

#[test]
fn monitor_streams_commands_in_redis_format_with_auth_redacted() {
    let server = Server::start();
    let mut mon = server.raw();
    assert_eq!(mon.cmd_str(&["MONITOR"]), Reply::Simple("OK".into()));
    let mut c = server.conn();
    let _: () = q(&mut c, &["SET", "k", "a b\"c"]);
    let _ = query_err(&mut c, &cmd(&["AUTH", "hunter2"]));
    let _: Option<String> = q(&mut c, &["GET", "k"]);
    let mut lines = Vec::new();
    let stream = mon.stream().try_clone().expect("clone");
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(stream);
    while lines.len() < 3 {
        let mut line = String::new();
        reader.read_line(&mut line).expect("monitor line");
        let line = line.trim_end().to_string();
        // redis-rs's own handshake commands may come first.
        if line.contains("\"SET\"") || line.contains("\"AUTH\"") || line.contains("\"GET\"") {
            lines.push(line);
        }
    }
    let shape = |l: &str, rest: &str| {
        let (ts, tail) = l.split_once(' ').expect("space");
        let ts = ts.strip_prefix('+').expect("+");
        let (secs, micros) = ts.split_once('.').expect("dot");
        assert!(secs.len() >= 10 && micros.len() == 6, "{l}");
        assert!(tail.starts_with("[0 127.0.0.1:"), "{l}");
        assert!(tail.ends_with(rest), "{l}");
    };
    shape(&lines[0], "] \"SET\" \"k\" \"a b\\\"c\"");
    shape(&lines[1], "] \"AUTH\" \"(redacted)\"");
    assert!(!lines[1].contains("hunter2"));
    shape(&lines[2], "] \"GET\" \"k\"");
    // CLIENT LIST flags the monitor with O, as Redis does.
    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    assert!(list.lines().any(|l| l.contains(" flags=O ")), "{list}");
    // QUIT leaves monitor mode.
    mon.send(&common::encode(&[b"QUIT"])).expect("send");
    assert!(mon.is_closed_within(Duration::from_secs(5)));
}

#[test]
fn command_docs_carry_arguments_for_redis_cli_hints() {
    let server = Server::start();
    let mut c = server.conn();
    let docs: Value = q(&mut c, &["COMMAND", "DOCS", "set"]);
    let text = format!("{docs:?}");
    for needle in [
        "arguments",
        "\"key\"",
        "key_spec_index",
        "\"NX\"",
        "oneof",
        "\"EX\"",
        "optional",
    ] {
        assert!(
            text.contains(needle),
            "COMMAND DOCS set lacks {needle}: {text}"
        );
    }
    let all: HashMap<String, Value> = q(&mut c, &["COMMAND", "DOCS"]);
    for name in ["slowlog", "latency", "memory", "monitor"] {
        assert!(all.contains_key(name), "{name}");
    }
}

/// Sum of the `_count` samples of a histogram whose label matches.
fn histogram_count(body: &str, name: &str, label: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}_count{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn replica_rpcs_are_timed_on_the_coordinator_by_kind() {
    if is_real_redis() {
        return;
    }
    let c = common::cluster::Cluster::start_with(2, (2, 2, 2), &["--fsync", "everysec"], |_| 0);
    c.wait_converged(&[0, 1], Duration::from_secs(30));
    let before = http_get(c.nodes[0].metrics_port(), "/metrics").1;
    let puts = |body: &str| {
        histogram_count(body, "dynkv_rpc_duration_seconds", "kind=\"put\"")
            + histogram_count(body, "dynkv_rpc_duration_seconds", "kind=\"coordinate\"")
    };
    for i in 0..5 {
        c.ok(0, &["SET", &format!("key{i}"), "v"]);
    }
    let after = http_get(c.nodes[0].metrics_port(), "/metrics").1;
    // W=2 of 2: every write reached the other node through an RPC that
    // node 0 sent (a Put as coordinator, or a Coordinate to forward).
    assert!(puts(&after) - puts(&before) >= 5.0, "{after}");
    // Gossip rounds (one a second) are timed too.
    common::cluster::wait_until(Duration::from_secs(10), "a timed gossip RPC", || {
        let body = http_get(c.nodes[0].metrics_port(), "/metrics").1;
        histogram_count(&body, "dynkv_rpc_duration_seconds", "kind=\"gossip\"") >= 1.0
    });
}

#[test]
fn a_monitor_that_stops_reading_is_dropped_without_slowing_other_clients() {
    if is_real_redis() {
        return;
    }
    let server = Server::start();
    let mut mon = server.raw();
    assert_eq!(mon.cmd_str(&["MONITOR"]), Reply::Simple("OK".into()));
    // The monitor now reads nothing while another client runs far more
    // commands than its backlog (16k lines) holds.
    // Lines of ~1 KB: 40 MB in all, more than the backlog plus socket buffers.
    let value = "v".repeat(1000);
    let mut c = server.conn();
    let start = Instant::now();
    for batch in 0..40 {
        let mut p = redis::pipe();
        for i in 0..1000 {
            p.cmd("SET")
                .arg(format!("k{batch}-{i}"))
                .arg(&value)
                .ignore();
        }
        let _: () = p.query(&mut c).expect("pipeline");
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(60), "40k SETs took {took:?}");
    // Reading now drains what was sent, then the connection is closed.
    let mut stream = mon.stream().try_clone().expect("clone");
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => panic!("monitor not closed after falling behind ({total} bytes read): {e}"),
        }
    }
    assert!(
        total < 40_000 * 1000,
        "a lagging monitor got every line ({total} bytes)"
    );
    // The server is fine.
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}
