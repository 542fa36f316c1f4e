//! The partition function is Redis Cluster's hash slot: CLUSTER KEYSLOT
//! answers as redis-server does, `--partitions` sets Q at cluster creation
//! (a power of two from 64 to 16384) and is refused otherwise.

mod common;

use common::Server;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn cluster_keyslot_answers_as_redis_cluster_does() {
    let s = Server::start();
    let mut c = s.conn();
    // Values from redis-server --cluster-enabled yes.
    assert_eq!(q::<i64>(&mut c, &["CLUSTER", "KEYSLOT", "foo"]), 12182);
    assert_eq!(q::<i64>(&mut c, &["CLUSTER", "KEYSLOT", "bar"]), 5061);
    assert_eq!(
        q::<i64>(&mut c, &["CLUSTER", "KEYSLOT", "foo{}{bar}"]),
        8363
    );
    let tagged: i64 = q(&mut c, &["CLUSTER", "KEYSLOT", "{user1000}.following"]);
    assert_eq!(
        tagged,
        q::<i64>(&mut c, &["CLUSTER", "KEYSLOT", "user1000"])
    );
    let err = redis::cmd("CLUSTER")
        .arg("NOSUCH")
        .query::<redis::Value>(&mut c)
        .expect_err("unknown subcommand");
    assert!(err.to_string().contains("Try CLUSTER HELP"), "{err}");
    let err = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .query::<redis::Value>(&mut c)
        .expect_err("missing key");
    assert!(
        err.to_string().contains("wrong number of arguments"),
        "{err}"
    );
}

#[test]
fn partitions_sets_the_ring_size_and_tagged_keys_share_a_partition() {
    let s = Server::start_with(&["--partitions", "64"]);
    let mut c = s.conn();
    let ring: Vec<redis::Value> = q(&mut c, &["DYN.RING"]);
    assert_eq!(ring.len(), 64);
    // 16384 / 64 = 256 slots per partition.
    for (a, b) in [("{t}a", "{t}b"), ("{user}1", "{user}2")] {
        let sa: i64 = q(&mut c, &["CLUSTER", "KEYSLOT", a]);
        let sb: i64 = q(&mut c, &["CLUSTER", "KEYSLOT", b]);
        assert_eq!(sa / 256, sb / 256);
        assert_eq!(q::<String>(&mut c, &["SET", a, "1"]), "OK");
        assert_eq!(q::<String>(&mut c, &["SET", b, "2"]), "OK");
        assert_eq!(q::<String>(&mut c, &["GET", a]), "1");
        assert_eq!(q::<String>(&mut c, &["GET", b]), "2");
    }
}

#[test]
fn a_partition_count_that_is_not_a_power_of_two_in_range_is_refused() {
    for bad in ["100", "32", "32768", "x"] {
        let data = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dynkv"))
            .args([
                "--port",
                "0",
                "--tls-port",
                "0",
                "--metrics-port",
                "0",
                "--partitions",
                bad,
            ])
            .arg("--data-dir")
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dynkv");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("dynkv kept running with --partitions {bad}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        assert!(!status.success(), "--partitions {bad} started");
        assert!(
            stderr.contains("partitions"),
            "--partitions {bad}: {stderr}"
        );
    }
}
