//! Fault and limit tests with real `dynkv` processes on loopback: sloppy
//! reads of hinted data while owners are down, failure detection, a
//! replaced (empty) disk rejoining under a known name, very long keys, very
//! big values, FLUSHALL through the quorum path, a node whose clock is an
//! hour off, and the server's memory bound under a pipelined bulk load.
//!
//! Every check reads the data back through the client port. Each test
//! prints the figures it measures (`eprintln!`), so run with `--nocapture`:
//!
//! ```text
//! cargo test --release --test faults -- --nocapture --test-threads=1
//! ```
//!
//! The bulk-load size of `memory_bound_under_pipelined_bulk_load` is
//! `FAULTS_BULK_MB` (default 200); the full-size run is
//!
//! ```text
//! FAULTS_BULK_MB=2048 cargo test --release --test faults memory_bound -- --nocapture
//! ```
//!
//! The tests of this file serialise themselves (a global lock), whatever
//! `--test-threads` says: they are heavy, and one of them sets an
//! environment variable for the node it spawns.

mod common;

use common::cluster::{
    CONVERGE_TIMEOUT, Cluster, TEST_SECRET, args, assert_none, info_int, name, pipeline, wait_for,
    wait_until,
};
use common::{RawConn, Reply, Server, encode, is_real_redis, read_reply};
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long hinted handoff may take to drain after the target is back.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(30);
/// How long failure detection may take to mark a dead node "down".
const DETECT_TIMEOUT: Duration = Duration::from_secs(20);

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the tests of this file one at a time.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

fn kvs(prefix: &str, n: usize, tag: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}:{i}"), format!("{prefix}-{tag}-{i}")))
        .collect()
}

fn info_field(c: &Cluster, i: usize, field: &str) -> String {
    let info = c
        .info(i)
        .unwrap_or_else(|e| panic!("INFO on {}: {e}", name(i)));
    info.get(field)
        .unwrap_or_else(|| panic!("INFO dynamo of {} has no {field}: {info:?}", name(i)))
        .clone()
}

fn info_num(c: &Cluster, i: usize, field: &str) -> i64 {
    let info = c
        .info(i)
        .unwrap_or_else(|e| panic!("INFO on {}: {e}", name(i)));
    info_int(&info, field).unwrap_or_else(|e| panic!("{}: {e}", name(i)))
}

/// Deterministic, position-dependent bytes (so a shifted or truncated copy
/// does not compare equal).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ seed)
        .collect()
}

/// Which nodes hold a live copy of `key` (DYN.DEBUG LOCAL shows a value).
fn holders(c: &Cluster, live: &[usize], key: &str, value: &str) -> Vec<usize> {
    live.iter()
        .copied()
        .filter(|&i| c.local(i, key).values.contains(&Some(value.to_string())))
        .collect()
}

// ---------------------------------------------------------------------------
// 1. sloppy reads of hinted data, failure detection
// ---------------------------------------------------------------------------

/// 5 nodes, N=3 R=2 W=2. Kill one owner of K, write K through a non-owner:
/// a plain GET (R=2) through every live node returns the new value, which
/// only the fallback holding the hint and the remaining owners have. Then
/// kill a second owner and repeat: now two of the three nodes answering
/// are fallbacks. Restart both owners: the hints drain and each owner holds
/// the latest value locally.
#[test]
fn sloppy_read_returns_hinted_value_while_owners_are_down() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let t0 = Instant::now();
    let mut c = Cluster::start(5);
    let all: Vec<usize> = (0..5).collect();
    let key = "sloppy:key";

    assert_eq!(c.ok(0, &["SET", key, "v0"]), ok());
    // The N=3 owners: the nodes that hold v0 locally once replication of
    // the third copy (W=2 acks two) has finished.
    let owners = wait_for(Duration::from_secs(10), "3 replicas of the key", || {
        let h = holders(&c, &all, key, "v0");
        if h.len() == 3 {
            Ok(h)
        } else {
            Err(format!("holders {h:?}"))
        }
    });
    let non_owners: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| !owners.contains(i))
        .collect();
    eprintln!(
        "owners of {key}: {:?}; non-owners: {:?}",
        owners.iter().map(|&i| name(i)).collect::<Vec<_>>(),
        non_owners.iter().map(|&i| name(i)).collect::<Vec<_>>()
    );
    let (o1, o2) = (owners[0], owners[1]);
    let x = non_owners[0];

    // --- first owner down -------------------------------------------------
    c.kill9(o1);
    let live1: Vec<usize> = all.iter().copied().filter(|&i| i != o1).collect();
    let w = Instant::now();
    assert_eq!(
        c.q(x, &["SET", key, "v1"]),
        ok(),
        "SET through non-owner {} with owner {} dead must be acknowledged",
        name(x),
        name(o1)
    );
    eprintln!(
        "SET with 1 owner SIGKILLed (before detection) acked in {:?}",
        w.elapsed()
    );
    for &i in &live1 {
        assert_eq!(
            c.q(i, &["GET", key]),
            bulk("v1"),
            "GET {key} through {} with {} down",
            name(i),
            name(o1)
        );
    }
    let pending = wait_for(Duration::from_secs(5), "a hint for the dead owner", || {
        let p = c.info_sum(&live1, "hints_pending");
        if p > 0 {
            Ok(p)
        } else {
            Err(format!("hints_pending sum {p}"))
        }
    });
    eprintln!("hints_pending (sum over live nodes) with 1 owner down: {pending}");

    // Failure detection: after the calls above failed, the dead owner is
    // suspected/down on the live nodes and eventually listed "down".
    let suspected: Vec<i64> = live1
        .iter()
        .map(|&i| info_num(&c, i, "suspected_peers"))
        .collect();
    eprintln!("suspected_peers on live nodes: {suspected:?}");
    let sx = info_num(&c, x, "suspected_peers");
    assert!(
        sx >= 1,
        "{} called the dead owner {} and must count it in suspected_peers, got {sx}",
        name(x),
        name(o1)
    );
    let d = Instant::now();
    for &i in &live1 {
        c.wait_status(i, &live1, DETECT_TIMEOUT);
    }
    eprintln!(
        "{} seen down by all live nodes after {:?} more",
        name(o1),
        d.elapsed()
    );

    // --- second owner down ------------------------------------------------
    c.kill9(o2);
    let live2: Vec<usize> = live1.iter().copied().filter(|&i| i != o2).collect();
    let w = Instant::now();
    assert_eq!(
        c.q(x, &["SET", key, "v2"]),
        ok(),
        "SET through {} with owners {} and {} dead must be acknowledged (sloppy quorum)",
        name(x),
        name(o1),
        name(o2)
    );
    eprintln!("SET with 2 owners SIGKILLed acked in {:?}", w.elapsed());
    for &i in &live2 {
        assert_eq!(
            c.q(i, &["GET", key]),
            bulk("v2"),
            "GET {key} through {} with {} and {} down",
            name(i),
            name(o1),
            name(o2)
        );
        let v = c
            .dyn_get(i, key, None)
            .unwrap_or_else(|e| panic!("DYN.GET through {}: {e}", name(i)));
        assert_eq!(
            v.values,
            vec![Some("v2".to_string())],
            "DYN.GET through {}",
            name(i)
        );
    }
    let pending = c.info_sum(&live2, "hints_pending");
    eprintln!("hints_pending with 2 owners down: {pending}");
    assert!(
        pending >= 2,
        "two hinted copies expected, hints_pending sum {pending}"
    );

    // --- owners back: hints drain, owners hold v2 --------------------------
    c.restart(o1);
    c.restart(o2);
    let h = Instant::now();
    wait_until(HANDOFF_TIMEOUT, "hints to drain on every node", || {
        c.info_sum(&all, "hints_pending") == 0
    });
    wait_until(HANDOFF_TIMEOUT, "both owners to hold v2 locally", || {
        [o1, o2]
            .iter()
            .all(|&o| c.local(o, key).values == vec![Some("v2".to_string())])
    });
    eprintln!("handoff to restarted owners done in {:?}", h.elapsed());
    for &i in &all {
        assert_eq!(
            c.q(i, &["GET", key]),
            bulk("v2"),
            "GET through {} after heal",
            name(i)
        );
    }
    eprintln!("sloppy_read test total {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// 2. replaced disk
// ---------------------------------------------------------------------------

/// 3 nodes; node 3 loses its disk and comes back empty under the same
/// name: a new actor id, `rebuilding:1`, and no lost acknowledged write.
#[test]
fn replaced_disk_rejoins_as_new_actor_and_loses_nothing() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let t0 = Instant::now();
    let mut c = Cluster::start(3);
    let all = [0, 1, 2];
    let first = kvs("disk", 200, "a");
    assert_none(&c.set_many(0, &first), "initial SETs through n1");
    // Wait until n3 really holds them, so losing its disk loses data.
    wait_until(Duration::from_secs(10), "n3 to hold the 200 keys", || {
        let keys: Vec<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
        c.local_many(2, &keys)
            .iter()
            .zip(&first)
            .all(|(v, (_, val))| v.values == vec![Some(val.clone())])
    });
    let actor_before = info_field(&c, 2, "actor");
    assert_eq!(info_field(&c, 2, "rebuilding"), "0");

    c.kill9(2);
    let dir = c.nodes[2].data_dir().to_path_buf();
    for entry in std::fs::read_dir(&dir).expect("read data dir") {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).expect("remove");
        } else {
            std::fs::remove_file(&p).expect("remove");
        }
    }
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "data dir not empty"
    );
    // n3 was started with --join to n1's cluster port; restart keeps it.
    assert!(
        c.nodes[2].extra_args().iter().any(|a| a == "--join"),
        "n3 must restart with --join"
    );
    c.restart(2);
    let actor_after = info_field(&c, 2, "actor");
    let rebuilding = info_field(&c, 2, "rebuilding");
    eprintln!("n3 actor before {actor_before}, after {actor_after}, rebuilding:{rebuilding}");
    assert!(
        actor_after.starts_with("n3#"),
        "actor should be n3#<id>: {actor_after}"
    );
    assert_ne!(
        actor_before, actor_after,
        "a replaced disk must be a new version actor"
    );
    assert_eq!(rebuilding, "1", "n3 must report rebuilding:1");
    c.wait_converged(&all, CONVERGE_TIMEOUT);

    // The rebuilding node does not vote in reads: everything acknowledged
    // before still reads back through it (DYN.GET) and through the others.
    for (k, v) in first.iter().take(50) {
        let got = c
            .dyn_get(2, k, None)
            .unwrap_or_else(|e| panic!("DYN.GET {k} through n3: {e}"));
        assert_eq!(
            got.values,
            vec![Some(v.clone())],
            "DYN.GET {k} through rebuilding n3"
        );
    }
    for i in all {
        assert_none(
            &c.check_gets(i, &first),
            &format!("old keys through {}", name(i)),
        );
    }

    // New writes through the rebuilding node and through n1, and
    // overwrites of 100 old keys through n3.
    let via_n3 = kvs("disk-n3", 100, "b");
    let via_n1 = kvs("disk-n1", 100, "c");
    let over: Vec<(String, String)> = first
        .iter()
        .take(100)
        .map(|(k, _)| (k.clone(), format!("{k}-overwritten-by-n3")))
        .collect();
    assert_none(&c.set_many(2, &via_n3), "SETs through rebuilding n3");
    assert_none(&c.set_many(0, &via_n1), "SETs through n1");
    assert_none(&c.set_many(2, &over), "overwrites through rebuilding n3");

    let mut latest: BTreeMap<String, String> = first.iter().cloned().collect();
    latest.extend(via_n3.iter().cloned());
    latest.extend(via_n1.iter().cloned());
    latest.extend(over.iter().cloned());
    let latest: Vec<(String, String)> = latest.into_iter().collect();
    assert_eq!(latest.len(), 400);
    for i in all {
        assert_none(
            &c.check_gets(i, &latest),
            &format!("400 keys through {}", name(i)),
        );
    }
    eprintln!(
        "replaced disk: 400 keys read back through all 3 nodes; n3 rebuilding:{} at the end; total {:?}",
        info_field(&c, 2, "rebuilding"),
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 3. long keys
// ---------------------------------------------------------------------------

#[test]
fn long_keys_and_empty_key_across_nodes() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let t0 = Instant::now();
    let c = Cluster::start(3);
    let mut k100k = pattern(100_000, 1);
    // Arbitrary (non-UTF-8) bytes; the first byte makes it distinct.
    k100k[0] = b'L';
    let k64k = vec![b'k'; 65_536];
    let v100k = b"value-of-the-100000-byte-key".to_vec();
    let v64k = b"value-of-the-65536-byte-key".to_vec();

    assert_eq!(
        c.conn(0).cmd(&[b"SET", &k100k, &v100k]),
        ok(),
        "SET 100000-byte key via n1"
    );
    assert_eq!(
        c.conn(2).cmd(&[b"SET", &k64k, &v64k]),
        ok(),
        "SET 65536-byte key via n3"
    );
    for i in 0..3 {
        assert_eq!(
            c.conn(i).cmd(&[b"GET", &k100k]),
            Reply::Bulk(v100k.clone()),
            "GET 100000-byte key via {}",
            name(i)
        );
        assert_eq!(
            c.conn(i).cmd(&[b"GET", &k64k]),
            Reply::Bulk(v64k.clone()),
            "GET 65536-byte key via {}",
            name(i)
        );
    }
    // The long key is stored as itself: a key one byte shorter is absent.
    assert_eq!(c.conn(1).cmd(&[b"GET", &k64k[..65_535]]), Reply::Nil);

    // Empty key.
    assert_eq!(
        c.conn(1).cmd(&[b"SET", b"", b"empty-key-value"]),
        ok(),
        "SET \"\" via n2"
    );
    for i in 0..3 {
        assert_eq!(
            c.conn(i).cmd(&[b"GET", b""]),
            bulk("empty-key-value"),
            "GET \"\" via {}",
            name(i)
        );
    }

    // The cluster still works normally afterwards.
    for i in 0..3 {
        let batch = kvs(&format!("after-long-{i}"), 100, "v");
        assert_none(&c.set_many(i, &batch), &format!("100 SETs via {}", name(i)));
        assert_none(
            &c.check_gets((i + 1) % 3, &batch),
            &format!("read back via {}", name((i + 1) % 3)),
        );
    }
    eprintln!(
        "long keys: 100000 B and 65536 B keys + empty key OK; total {:?}",
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 4. big values
// ---------------------------------------------------------------------------

/// Sends `SET key value` on a fresh connection, writing from a separate
/// thread so that a server that refuses early (and perhaps closes) is seen.
/// Returns the reply, or `Err` when the connection was closed without one.
fn set_big(addr: std::net::SocketAddr, key: &[u8], value: Arc<Vec<u8>>) -> Result<Reply, String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut w = s.try_clone().unwrap();
    let header = format!("*3\r\n$3\r\nSET\r\n${}\r\n", key.len());
    let mut head = header.into_bytes();
    head.extend_from_slice(key);
    head.extend_from_slice(format!("\r\n${}\r\n", value.len()).as_bytes());
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        w.write_all(&head)?;
        for chunk in value.chunks(1 << 20) {
            w.write_all(chunk)?;
        }
        w.write_all(b"\r\n")?;
        w.flush()
    });
    let mut r = BufReader::new(s);
    let reply = read_reply(&mut r);
    let wrote = writer.join().expect("writer thread");
    eprintln!("big SET writer finished: {wrote:?}");
    reply.map_err(|e| format!("no reply ({e})"))
}

#[test]
fn big_values_are_refused_or_stored_never_lost() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let t0 = Instant::now();
    let c = Cluster::start(3);

    // 20 MiB through n1, read back identical through n3 (and n2).
    let v20 = pattern(20 << 20, 7);
    let t = Instant::now();
    assert_eq!(
        c.conn(0).cmd(&[b"SET", b"big:20m", &v20]),
        ok(),
        "SET 20 MiB via n1"
    );
    let set_time = t.elapsed();
    for i in [2, 1] {
        let t = Instant::now();
        let got = c.conn(i).cmd(&[b"GET", b"big:20m"]);
        match got {
            Reply::Bulk(b) => assert!(
                b == v20,
                "20 MiB value via {} differs (len {})",
                name(i),
                b.len()
            ),
            other => panic!("GET big:20m via {}: {other:?}", name(i)),
        }
        eprintln!(
            "20 MiB: SET {set_time:?}, GET via {} {:?}",
            name(i),
            t.elapsed()
        );
    }

    // 100 MB through n1 while another client keeps writing.
    assert_eq!(c.ok(0, &["SET", "big:100m", "old"]), ok());
    let stop = Arc::new(AtomicBool::new(false));
    let small_ok = Arc::new(AtomicU64::new(0));
    let small_worst_us = Arc::new(AtomicU64::new(0));
    let background = {
        let addr = c.nodes[0].addr();
        let (stop, small_ok, worst) = (stop.clone(), small_ok.clone(), small_worst_us.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let mut conn = RawConn::connect(addr);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("small:{i}");
                let v = format!("small-value-{i}");
                let t = Instant::now();
                let r = conn.cmd_str(&["SET", &k, &v]);
                if r != Reply::Simple("OK".into()) {
                    return Err(format!("SET {k} during big SET: {r:?}"));
                }
                worst.fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                small_ok.fetch_add(1, Ordering::Relaxed);
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        })
    };
    let v100 = Arc::new(pattern(100_000_000, 3));
    let t = Instant::now();
    let result = set_big(c.nodes[0].addr(), b"big:100m", v100.clone());
    let big_time = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    background
        .join()
        .expect("background thread")
        .unwrap_or_else(|e| panic!("ordinary SET failed while a 100 MB SET was in flight: {e}"));
    let n_small = small_ok.load(Ordering::Relaxed);
    eprintln!(
        "100 MB SET via n1 -> {:?} in {big_time:?}; {n_small} ordinary SETs meanwhile, worst {} ms",
        result.as_ref().map(|r| match r {
            Reply::Error(e) => format!("error {e}"),
            other => format!("{other:?}"),
        }),
        small_worst_us.load(Ordering::Relaxed) / 1000
    );
    assert!(
        n_small > 0,
        "no ordinary SET completed while the 100 MB SET was in flight"
    );
    // The ordinary writes are really there.
    let smalls: Vec<(String, String)> = (0..n_small)
        .map(|i| (format!("small:{i}"), format!("small-value-{i}")))
        .collect();
    assert_none(&c.check_gets(2, &smalls), "ordinary SETs read back via n3");

    match result {
        Ok(Reply::Simple(s)) if s == "OK" => {
            // Acknowledged: must be readable, byte-identical, via n3.
            let mut conn = c.conn(2);
            conn.set_read_timeout(Duration::from_secs(120));
            match conn.cmd(&[b"GET", b"big:100m"]) {
                Reply::Bulk(b) => assert!(
                    b == *v100,
                    "acknowledged 100 MB value read back via n3 differs (len {})",
                    b.len()
                ),
                other => panic!("acknowledged 100 MB SET lost: GET via n3 = {other:?}"),
            }
            eprintln!("100 MB value acknowledged and read back identical via n3");
        }
        Ok(Reply::Error(e)) => {
            eprintln!("100 MB SET refused: {e}");
            let got = c.q(2, &["GET", "big:100m"]);
            assert!(
                got == Reply::Nil || got == bulk("old"),
                "refused 100 MB SET must leave nil or the old value, GET via n3 = {:?}",
                match &got {
                    Reply::Bulk(b) => format!("bulk of {} bytes", b.len()),
                    other => format!("{other:?}"),
                }
            );
        }
        Ok(other) => panic!("100 MB SET: unexpected reply {other:?}"),
        Err(e) => {
            // Closed without a readable reply (e.g. the error reply was
            // lost to a reset while we were still sending): not an ack.
            eprintln!("100 MB SET: connection closed without a reply: {e}");
            let got = c.q(2, &["GET", "big:100m"]);
            assert!(
                got == Reply::Nil || got == bulk("old") || got == Reply::Bulk(v100.to_vec()),
                "GET via n3 after an unanswered 100 MB SET: unexpected reply"
            );
        }
    }
    // The cluster is still healthy right afterwards.
    let r = c.q(0, &["SET", "after-big", "1"]);
    assert_eq!(
        r,
        ok(),
        "an ordinary SET through n1 right after the 100 MB SET must succeed"
    );
    assert_eq!(c.q(2, &["GET", "after-big"]), bulk("1"));
    eprintln!("big values total {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// 5. FLUSHALL
// ---------------------------------------------------------------------------

#[test]
fn flushall_in_cluster_deletes_everywhere_without_resurrection() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let t0 = Instant::now();
    let c = Cluster::start(3);
    let data = kvs("flush", 500, "v");
    assert_none(&c.set_many(0, &data), "500 SETs via n1");
    for i in 0..3 {
        assert_none(
            &c.check_gets(i, &data),
            &format!("read back via {}", name(i)),
        );
    }
    let t = Instant::now();
    assert_eq!(c.q(1, &["FLUSHALL"]), ok(), "FLUSHALL via n2");
    eprintln!("FLUSHALL via n2 took {:?}", t.elapsed());

    let all_nil = |when: &str| {
        for i in 0..3 {
            let cmds: Vec<_> = data.iter().map(|(k, _)| args(&["GET", k])).collect();
            let replies = pipeline(&mut c.conn(i), &cmds);
            let bad: Vec<_> = data
                .iter()
                .zip(replies)
                .filter(|(_, r)| *r != Reply::Nil)
                .map(|((k, _), r)| (k.clone(), r))
                .collect();
            assert_none(
                &bad,
                &format!("GET via {} {when} FLUSHALL should be nil", name(i)),
            );
        }
    };
    all_nil("right after");
    let dbsize = |i: usize| match c.q(i, &["DBSIZE"]) {
        Reply::Int(n) => n,
        other => panic!("DBSIZE on {}: {other:?}", name(i)),
    };
    let t = Instant::now();
    wait_until(Duration::from_secs(10), "DBSIZE 0 on every node", || {
        (0..3).all(|i| dbsize(i) == 0)
    });
    eprintln!("DBSIZE 0 everywhere after {:?}", t.elapsed());
    std::thread::sleep(Duration::from_secs(3));
    all_nil("3 s after");
    for i in 0..3 {
        assert_eq!(dbsize(i), 0, "DBSIZE on {} 3 s after FLUSHALL", name(i));
        // No stale local copy is left to be repaired back either.
        for (k, _) in data.iter().step_by(50) {
            let v = c.local(i, k);
            assert!(
                v.values.iter().all(|x| x.is_none()),
                "{} still holds a live copy of {k}: {v:?}",
                name(i)
            );
        }
    }
    // New writes after FLUSHALL work.
    assert_eq!(c.q(2, &["SET", "flush:0", "again"]), ok());
    assert_eq!(c.q(0, &["GET", "flush:0"]), bulk("again"));
    eprintln!("flushall total {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// 6. clock skew
// ---------------------------------------------------------------------------

const SKEW_ENV: &str = "DYNKV_TEST_CLOCK_SKEW_MS";

/// Starts a 3-node cluster (N=3 R=2 W=2) whose node 3 runs with its clock
/// shifted by `skew_ms`.
fn start_with_skewed_n3(skew_ms: i64) -> Cluster {
    let mut c = Cluster::start_with(2, (3, 2, 2), &["--fsync", "everysec"], |_| 0);
    let join = format!("127.0.0.1:{}", c.nodes[0].cluster_port());
    let a = [
        "--node-name",
        "n3",
        "--n",
        "3",
        "--r",
        "2",
        "--w",
        "2",
        "--join",
        &join,
        "--fsync",
        "everysec",
        "--cluster-secret",
        TEST_SECRET,
    ];
    // SAFETY: the tests of this file are serialised by `serial()` and no
    // other thread of this test reads the environment while it is set; the
    // child inherits it at spawn.
    unsafe { std::env::set_var(SKEW_ENV, skew_ms.to_string()) };
    let n3 = std::panic::catch_unwind(|| Server::start_with(&a));
    unsafe { std::env::remove_var(SKEW_ENV) };
    c.nodes
        .push(n3.unwrap_or_else(|e| std::panic::resume_unwind(e)));
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
    c
}

#[test]
fn clock_skewed_node_does_not_coordinate_writes() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let t0 = Instant::now();
    let c = start_with_skewed_n3(-3_600_000);
    // Wait until every node has measured both peers: n3 sees itself an
    // hour behind, n1 and n2 (with one healthy peer each) see themselves
    // on time.
    let offset = wait_for(
        Duration::from_secs(20),
        "n3 to measure its clock offset, n1/n2 to see themselves on time",
        || {
            let o = info_num(&c, 2, "clock_offset_ms");
            let others: Vec<i64> = [0, 1]
                .iter()
                .map(|&i| info_num(&c, i, "clock_offset_ms"))
                .collect();
            if o <= -3_000_000 && others.iter().all(|x| x.abs() < 500) {
                Ok(o)
            } else {
                Err(format!("n3 clock_offset_ms {o}, n1/n2 {others:?}"))
            }
        },
    );
    let max = info_field(&c, 2, "max_offset_ms");
    let others: Vec<i64> = [0, 1]
        .iter()
        .map(|&i| info_num(&c, i, "clock_offset_ms"))
        .collect();
    eprintln!("n3 clock_offset_ms {offset}, max_offset_ms {max}; n1/n2 offsets {others:?}");
    assert_eq!(max, "500");
    for o in &others {
        assert!(
            o.abs() < 500,
            "healthy nodes should not think they are skewed: {others:?}"
        );
    }
    let before = info_num(&c, 2, "clock_refusals") + info_num(&c, 2, "forwarded_requests");

    assert_eq!(c.q(0, &["SET", "skew:k", "v1"]), ok(), "SET v1 via n1");
    let r = c.q(2, &["SET", "skew:k", "v2"]);
    eprintln!("SET v2 via skewed n3 -> {r:?}");
    let expect = match &r {
        Reply::Simple(s) if s == "OK" => "v2",
        Reply::Error(e) if e.starts_with("CLOCKSKEW") => "v1",
        other => panic!("SET via skewed n3 must be acked or refused with CLOCKSKEW: {other:?}"),
    };
    let check = |when: &str| {
        for i in 0..3 {
            assert_eq!(
                c.q(i, &["GET", "skew:k"]),
                bulk(expect),
                "GET skew:k via {} {when}",
                name(i)
            );
            let v = c.dyn_get(i, "skew:k", None).expect("DYN.GET");
            assert_eq!(
                v.values,
                vec![Some(expect.to_string())],
                "DYN.GET via {} {when}",
                name(i)
            );
        }
    };
    check("right after");
    std::thread::sleep(Duration::from_secs(2));
    check("2 s later");

    let after_k = info_num(&c, 2, "clock_refusals") + info_num(&c, 2, "forwarded_requests");
    assert!(
        after_k > before,
        "n3 must forward or refuse SET skew:k instead of coordinating it \
         (clock_refusals+forwarded_requests stayed at {before})"
    );
    let r = c.q(2, &["SET", "skew:e", "1", "EX", "600"]);
    eprintln!("SET e 1 EX 600 via skewed n3 -> {r:?}");
    match &r {
        Reply::Simple(s) if s == "OK" => {
            for i in [0, 1] {
                let ttl = match c.q(i, &["TTL", "skew:e"]) {
                    Reply::Int(t) => t,
                    other => panic!("TTL via {}: {other:?}", name(i)),
                };
                eprintln!("TTL skew:e via {}: {ttl}", name(i));
                assert!(
                    ttl > 590 && ttl <= 600,
                    "TTL via {} should be ~600, got {ttl}",
                    name(i)
                );
                assert_eq!(c.q(i, &["GET", "skew:e"]), bulk("1"));
            }
        }
        Reply::Error(e) if e.starts_with("CLOCKSKEW") => {
            assert_eq!(c.q(0, &["GET", "skew:e"]), Reply::Nil);
        }
        other => panic!("SET EX via skewed n3: {other:?}"),
    }
    let refusals = info_num(&c, 2, "clock_refusals");
    let forwarded = info_num(&c, 2, "forwarded_requests");
    eprintln!("n3 clock_refusals {refusals}, forwarded_requests {forwarded}");
    assert!(
        refusals + forwarded - before >= 2,
        "n3 must forward or refuse both writes instead of coordinating them \
         (refusals+forwarded went from {before} to {})",
        refusals + forwarded
    );
    eprintln!("clock skew total {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// 7. memory bound under a pipelined bulk load
// ---------------------------------------------------------------------------

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn memory_bound_under_pipelined_bulk_load() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let total_mb: u64 = std::env::var("FAULTS_BULK_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    const CLIENTS: usize = 50;
    const BATCH: usize = 100;
    const VALUE: usize = 1024;
    let total_sets = (total_mb * 1024 * 1024 / VALUE as u64) as usize;
    let per_client = total_sets.div_ceil(CLIENTS);
    let server = Server::start_with(&["--fsync", "everysec"]);
    let pid = server.pid();
    let rss0 = rss_kib(pid).expect("VmRSS");

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut max = 0u64;
            let mut samples = 0u64;
            while !done.load(Ordering::Relaxed) {
                if let Some(r) = rss_kib(pid) {
                    max = max.max(r);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (max, samples)
        })
    };
    let t = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|cl| {
            let addr = server.addr();
            std::thread::spawn(move || -> Result<usize, String> {
                let mut conn = RawConn::connect(addr);
                conn.set_read_timeout(Duration::from_secs(60));
                let value = pattern(VALUE, cl as u8);
                let mut sent = 0;
                while sent < per_client {
                    let n = BATCH.min(per_client - sent);
                    let mut buf = Vec::with_capacity(n * (VALUE + 64));
                    for j in sent..sent + n {
                        let k = format!("bulk:{cl}:{j}");
                        buf.extend_from_slice(&encode(&[b"SET", k.as_bytes(), &value]));
                    }
                    conn.send(&buf)
                        .map_err(|e| format!("client {cl}: send: {e}"))?;
                    for j in sent..sent + n {
                        match conn.read() {
                            Ok(Reply::Simple(s)) if s == "OK" => {}
                            other => {
                                return Err(format!("client {cl} SET bulk:{cl}:{j}: {other:?}"));
                            }
                        }
                    }
                    sent += n;
                }
                Ok(sent)
            })
        })
        .collect();
    let mut written = 0usize;
    let mut errors = Vec::new();
    for w in workers {
        match w.join().expect("worker") {
            Ok(n) => written += n,
            Err(e) => errors.push(e),
        }
    }
    let elapsed = t.elapsed();
    // Keep sampling for a moment after the load (flushes, compaction).
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    let (max_kib, samples) = sampler.join().expect("sampler");
    let mb = written as f64 * VALUE as f64 / (1024.0 * 1024.0);
    eprintln!(
        "bulk load: {written} SETs of {VALUE} B ({mb:.0} MiB) by {CLIENTS} clients in {elapsed:?} \
         ({:.0} SET/s, {:.1} MiB/s); RSS start {} MiB, max {} MiB over {samples} samples",
        written as f64 / elapsed.as_secs_f64(),
        mb / elapsed.as_secs_f64(),
        rss0 / 1024,
        max_kib / 1024
    );
    assert_none(&errors, "bulk-load clients");
    assert!(samples > 0, "no RSS sample taken");
    assert!(
        max_kib < 512 * 1024,
        "server RSS reached {} MiB (> 512 MiB) during a {total_mb} MB load",
        max_kib / 1024
    );

    // Read back: DBSIZE and a sample of values.
    let mut conn = server.raw();
    assert_eq!(
        conn.cmd_str(&["DBSIZE"]),
        Reply::Int((per_client * CLIENTS) as i64)
    );
    let mut cmds = Vec::new();
    let mut want = Vec::new();
    for cl in (0..CLIENTS).step_by(7) {
        for j in (0..per_client).step_by(per_client / 50 + 1) {
            cmds.push(args(&["GET", &format!("bulk:{cl}:{j}")]));
            want.push(Reply::Bulk(pattern(VALUE, cl as u8)));
        }
    }
    let got = pipeline(&mut conn, &cmds);
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    assert_none(&bad, "sampled bulk values read back");
    eprintln!("read back {} sampled values OK", got.len());
}
