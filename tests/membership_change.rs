//! Membership changes that lose no read, with real processes on loopback:
//! nodes joining a loaded cluster one after the other, a node leaving with
//! `DYN.LEAVE`, and a dead node removed with `DYN.LEAVE node`. A writer
//! runs throughout (every acknowledged key is recorded) and readers GET
//! every acknowledged key through every node during and after each change:
//! no read may miss a key, no write may fail. At the end every key is on
//! exactly N nodes (`DYN.DEBUG LOCAL`) and the partitions are balanced.
//!
//! CI size: 4,000 keys preloaded (about two minutes for both tests).
//! `DYNKV_MEMBERSHIP_FULL=1` runs the same tests with 100,000 keys
//! (`scripts/membership-full.sh`).

mod common;

use common::cluster::{
    CONVERGE_TIMEOUT, Cluster, PARTITIONS, RingMap, TEST_SECRET, args, info_int, name, pipeline,
    wait_for,
};
use common::{RawConn, Reply, Server};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const N: usize = 3;

fn full() -> bool {
    std::env::var("DYNKV_MEMBERSHIP_FULL").is_ok_and(|v| v == "1")
}

/// Keys loaded before the first change.
fn preload() -> usize {
    if full() { 100_000 } else { 4_000 }
}

/// How long a change may take to complete.
fn change_timeout() -> Duration {
    if full() {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(180)
    }
}

fn value_of(key: &str) -> String {
    format!("value-of-{key}-{}", "x".repeat(40))
}

/// Writes new keys through the given nodes until stopped, recording each
/// acknowledged key and counting failed writes.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    failed: Arc<Mutex<Vec<(String, Reply)>>>,
    through: Arc<Mutex<Vec<SocketAddr>>>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(prefix: &str, through: Vec<SocketAddr>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let through = Arc::new(Mutex::new(through));
        let (s, a, f, t) = (stop.clone(), acked.clone(), failed.clone(), through.clone());
        let prefix = prefix.to_string();
        let handle = std::thread::spawn(move || {
            let mut i = 0usize;
            let mut round = 0usize;
            while !s.load(Ordering::SeqCst) {
                let addrs = t.lock().expect("lock").clone();
                let addr = addrs[round % addrs.len()];
                round += 1;
                let keys: Vec<String> = (i..i + 50).map(|k| format!("{prefix}-{k}")).collect();
                i += 50;
                let cmds: Vec<_> = keys
                    .iter()
                    .map(|k| args(&["SET", k, &value_of(k)]))
                    .collect();
                let mut conn = RawConn::connect(addr);
                let replies = pipeline(&mut conn, &cmds);
                let ok = Reply::Simple("OK".into());
                for (k, r) in keys.into_iter().zip(replies) {
                    let mut r = r;
                    let mut tries = 0;
                    // A quorum deadline missed on a loaded machine: the SET
                    // is idempotent, ask again (counted and reported).
                    while r.is_error() && tries < 3 {
                        WRITES_RETRIED.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        r = RawConn::connect(addr).cmd_str(&["SET", &k, &value_of(&k)]);
                        tries += 1;
                    }
                    if r == ok {
                        a.lock().expect("lock").push(k);
                    } else {
                        f.lock().expect("lock").push((k, r));
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Writer {
            stop,
            acked,
            failed,
            through,
            handle: Some(handle),
        }
    }

    fn acked(&self) -> Vec<String> {
        self.acked.lock().expect("lock").clone()
    }

    fn stop(&mut self) -> (Vec<String>, Vec<(String, Reply)>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().expect("writer thread");
        }
        (self.acked(), self.failed.lock().expect("lock").clone())
    }
}

/// Reads that timed out (an error reply, not a nil) and were asked again:
/// on a loaded machine a replica may miss the 1 s quorum deadline.
static RETRIED: AtomicUsize = AtomicUsize::new(0);
/// Writes that got an error reply (UNAVAILABLE or TIMEOUT: a quorum
/// deadline missed) and were sent again.
static WRITES_RETRIED: AtomicUsize = AtomicUsize::new(0);

/// GETs `keys` through node `i`; returns the keys that did not read back.
/// A nil or a wrong value is a miss at once; an error reply (a quorum
/// deadline missed) is asked again, up to three times.
fn misses(c: &Cluster, i: usize, keys: &[String]) -> Vec<(String, Reply)> {
    let cmds: Vec<_> = keys.iter().map(|k| args(&["GET", k])).collect();
    let replies = pipeline(&mut c.conn(i), &cmds);
    let want = |k: &str| Reply::Bulk(value_of(k).into_bytes());
    let mut out = Vec::new();
    for (k, r) in keys.iter().zip(replies) {
        let mut r = r;
        let mut tries = 0;
        while r.is_error() && tries < 3 {
            RETRIED.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            r = c.q(i, &["GET", k]);
            tries += 1;
        }
        if r != want(k) {
            out.push((k.clone(), r));
        }
    }
    out
}

/// Reads every key through every node in `nodes`; panics on any miss.
fn read_all(c: &Cluster, nodes: &[usize], keys: &[String], when: &str) -> usize {
    let mut reads = 0;
    for &i in nodes {
        let bad = misses(c, i, keys);
        assert!(
            bad.is_empty(),
            "{when}: {} of {} reads through {} missed; first: {:?}",
            bad.len(),
            keys.len(),
            name(i),
            &bad[..bad.len().min(5)]
        );
        reads += keys.len();
    }
    reads
}

/// Starts node `i` joining through node 0.
fn add_node(c: &mut Cluster, i: usize) {
    assert_eq!(c.nodes.len(), i);
    let a: Vec<String> = vec![
        "--node-name".into(),
        name(i),
        "--n".into(),
        c.n.to_string(),
        "--r".into(),
        c.r.to_string(),
        "--w".into(),
        c.w.to_string(),
        "--join".into(),
        format!("127.0.0.1:{}", c.nodes[0].cluster_port()),
        "--fsync".into(),
        "everysec".into(),
        "--cluster-secret".into(),
        TEST_SECRET.into(),
    ];
    let refs: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    c.nodes.push(Server::start_with(&refs));
}

fn moving(c: &Cluster, i: usize) -> Result<i64, String> {
    info_int(&c.info(i)?, "partitions_moving")
}

/// Waits until every node in `live` reports `members` members, nothing
/// moving, and the same ring.
fn wait_settled(c: &Cluster, live: &[usize], members: usize) -> RingMap {
    wait_for(change_timeout(), "the membership change to commit", || {
        let mut first: Option<RingMap> = None;
        for &i in live {
            let m = c.members(i)?;
            if m.len() != members {
                return Err(format!("{} lists {} members", name(i), m.len()));
            }
            let moving = moving(c, i)?;
            if moving != 0 {
                return Err(format!("{} has {moving} partitions moving", name(i)));
            }
            let ring = c.ring(i)?;
            if Cluster::ring_names(&ring).len() != members {
                return Err(format!(
                    "{} ring has {:?}",
                    name(i),
                    Cluster::ring_names(&ring)
                ));
            }
            match &first {
                None => first = Some(ring),
                Some(f) if *f != ring => return Err(format!("{} ring differs", name(i))),
                _ => {}
            }
        }
        first.ok_or_else(|| "no nodes".to_string())
    })
}

/// Partition replicas that a change from `before` to `after` adds.
fn replicas_moved(before: &RingMap, after: &RingMap) -> usize {
    after
        .iter()
        .map(|(p, pl)| {
            let old = before.get(p).cloned().unwrap_or_default();
            pl.iter().filter(|n| !old.contains(n)).count()
        })
        .sum()
}

/// Every node in `live` owns Q/S ± 1 partitions.
fn assert_balanced(c: &Cluster, live: &[usize]) {
    let members = c.members(live[0]).expect("members");
    let s = members.len() as i64;
    let q = PARTITIONS as i64;
    for m in &members {
        assert!(
            (m.partitions - q / s).abs() <= 1,
            "{} owns {} partitions, want {}±1: {members:?}",
            m.name,
            m.partitions,
            q / s
        );
    }
}

/// Waits until every key is on exactly `n` of the nodes in `live`.
fn wait_exactly_n(c: &Cluster, live: &[usize], keys: &[String], n: usize, within: Duration) {
    let refs: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    wait_for(within, &format!("every key on exactly {n} nodes"), || {
        let mut copies = vec![0usize; keys.len()];
        for &i in live {
            for (j, v) in c.local_many(i, &refs).iter().enumerate() {
                if v.values
                    .iter()
                    .any(|x| x.as_deref() == Some(value_of(keys[j].as_str()).as_str()))
                {
                    copies[j] += 1;
                }
            }
        }
        let wrong: Vec<(&String, usize)> = keys
            .iter()
            .zip(&copies)
            .filter(|(_, c)| **c != n)
            .map(|(k, c)| (k, *c))
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} keys are not on {n} nodes; first: {:?}",
                wrong.len(),
                &wrong[..wrong.len().min(5)]
            ))
        }
    });
}

fn preload_keys(c: &Cluster, prefix: &str) -> Vec<String> {
    let keys: Vec<String> = (0..preload()).map(|k| format!("{prefix}-{k}")).collect();
    let kvs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), value_of(k))).collect();
    for chunk in kvs.chunks(5_000) {
        let bad = c.set_many(0, chunk);
        assert!(
            bad.is_empty(),
            "preload failed: {:?}",
            &bad[..bad.len().min(5)]
        );
    }
    keys
}

fn addrs(c: &Cluster, nodes: &[usize]) -> Vec<SocketAddr> {
    nodes.iter().map(|&i| c.nodes[i].addr()).collect()
}

/// Keys loaded plus keys the writer has had acknowledged so far.
fn known(pre: &[String], w: &Writer) -> Vec<String> {
    let mut all = pre.to_vec();
    all.extend(w.acked());
    all
}

/// The two tests start eight server processes between them: run side by
/// side on a 2-core CI machine they would time each other out, so each
/// holds this lock for its whole run.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that panicked poisons the lock; the next one still runs.
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn sum_info(c: &Cluster, nodes: &[usize], field: &str) -> i64 {
    c.info_sum(nodes, field)
}

#[test]
fn joins_under_load_lose_no_read() {
    let _one_at_a_time = serial();
    let started = Instant::now();
    let mut c = Cluster::start_with(3, (N, 2, 2), &["--fsync", "everysec"], |_| 0);
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
    wait_settled(&c, &[0, 1, 2], 3);
    let pre = preload_keys(&c, "pre");
    let mut writer = Writer::start("w", addrs(&c, &[0, 1, 2]));
    let mut reads = 0usize;
    let mut ring = c.ring(0).expect("ring");
    for joiner in [3usize, 4] {
        let s = c.nodes.len();
        let bytes_before = sum_info(&c, &(0..s).collect::<Vec<_>>(), "handoff_bytes_sent");
        // The data when the change starts (keys written while it runs go
        // to the next owners directly, and partly through the stream too).
        let data_bytes: usize = known(&pre, &writer)
            .iter()
            .map(|k| k.len() + value_of(k).len())
            .sum();
        add_node(&mut c, joiner);
        let live: Vec<usize> = (0..=joiner).collect();
        // During the change: read everything through every node, again
        // and again, until it commits.
        let mut rounds_during = 0;
        let deadline = Instant::now() + change_timeout();
        loop {
            let keys = known(&pre, &writer);
            let still_moving = live
                .iter()
                .any(|&i| moving(&c, i).map(|m| m > 0).unwrap_or(true));
            let members_seen = c.members(0).map(|m| m.len()).unwrap_or(0);
            reads += read_all(&c, &live, &keys, &format!("while {} joins", name(joiner)));
            if members_seen == joiner + 1 && !still_moving {
                break;
            }
            rounds_during += 1;
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                Instant::now() < deadline,
                "{} never finished joining",
                name(joiner)
            );
        }
        let after = wait_settled(&c, &live, joiner + 1);
        writer
            .through
            .lock()
            .expect("lock")
            .push(c.nodes[joiner].addr());
        let keys = known(&pre, &writer);
        reads += read_all(&c, &live, &keys, &format!("after {} joined", name(joiner)));
        assert_balanced(&c, &live);
        let moved = replicas_moved(&ring, &after);
        let ideal = (N * PARTITIONS) as f64 / (s + 1) as f64;
        let bytes = sum_info(&c, &live, "handoff_bytes_sent") - bytes_before;
        let ideal_bytes = (N * data_bytes) as f64 / (s + 1) as f64;
        eprintln!(
            "join of {}: {rounds_during} read rounds during the change; {moved} partition replicas moved (ideal {ideal:.0}, {:.2}x); {bytes} bytes moved (ideal {ideal_bytes:.0}, {:.2}x)",
            name(joiner),
            moved as f64 / ideal,
            bytes as f64 / ideal_bytes
        );
        assert!(
            moved as f64 <= ideal * 1.5,
            "moved {moved} replicas, ideal {ideal:.0}"
        );
        assert!(bytes > 0, "no bytes were handed off");
        ring = after;
    }
    let (acked, failed) = writer.stop();
    assert!(
        failed.is_empty(),
        "{} writes failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let mut keys = pre.clone();
    keys.extend(acked);
    let live: Vec<usize> = (0..5).collect();
    reads += read_all(&c, &live, &keys, "at the end");
    wait_exactly_n(&c, &live, &keys, N, Duration::from_secs(60));
    eprintln!(
        "{} keys, {reads} reads, 0 missed, 0 failed writes ({} reads and {} writes asked again after a timeout), {:?}",
        keys.len(),
        RETRIED.load(Ordering::SeqCst),
        WRITES_RETRIED.load(Ordering::SeqCst),
        started.elapsed()
    );
}

#[test]
fn leave_and_removal_of_a_dead_node_lose_no_read() {
    let _one_at_a_time = serial();
    let started = Instant::now();
    let mut c = Cluster::start_with(5, (N, 2, 2), &["--fsync", "everysec"], |_| 0);
    c.wait_converged(&[0, 1, 2, 3, 4], CONVERGE_TIMEOUT);
    wait_settled(&c, &[0, 1, 2, 3, 4], 5);
    let pre = preload_keys(&c, "pre");
    let mut writer = Writer::start("w", addrs(&c, &[0, 1, 2]));

    // n5 leaves on its own.
    assert_eq!(c.q(4, &["DYN.LEAVE"]), Reply::Simple("OK".into()));
    let err = c.q(4, &["DYN.LEAVE"]);
    assert!(err.is_error(), "a second DYN.LEAVE should fail: {err:?}");
    let mut reads = 0;
    let live: Vec<usize> = (0..4).collect();
    let deadline = Instant::now() + change_timeout();
    let status = loop {
        reads += read_all(&c, &[0, 1, 2], &known(&pre, &writer), "while n5 leaves");
        if let Some(status) = c.nodes[4].wait_exit(Duration::from_millis(300)) {
            break status;
        }
        assert!(Instant::now() < deadline, "n5 did not exit after leaving");
    };
    assert!(status.success(), "the leaver exited with {status:?}");
    wait_settled(&c, &live, 4);
    reads += read_all(&c, &live, &known(&pre, &writer), "after n5 left");
    assert_balanced(&c, &live);

    // Errors are clear.
    let unknown = c.q(0, &["DYN.LEAVE", "nosuchnode"]);
    assert!(
        unknown.is_error() && unknown.as_str().contains("unknown node"),
        "{unknown:?}"
    );
    let alive = c.q(0, &["DYN.LEAVE", "n2"]);
    assert!(
        alive.is_error() && alive.as_str().contains("is up"),
        "{alive:?}"
    );

    // n4 dies and is removed from n1.
    c.kill9(3);
    wait_for(Duration::from_secs(30), "n1 to see n4 down", || {
        let m = c.members(0)?;
        match m.iter().find(|m| m.name == "n4") {
            Some(m) if m.status == "down" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let removed_at = Instant::now();
    assert_eq!(c.q(0, &["DYN.LEAVE", "n4"]), Reply::Simple("OK".into()));
    let live: Vec<usize> = (0..3).collect();
    loop {
        reads += read_all(&c, &live, &known(&pre, &writer), "while n4 is removed");
        let done = live.iter().all(|&i| {
            c.members(i).map(|m| m.len() == 3).unwrap_or(false)
                && moving(&c, i).map(|m| m == 0).unwrap_or(false)
        });
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            removed_at.elapsed() < change_timeout(),
            "n4 was never removed"
        );
    }
    wait_settled(&c, &live, 3);
    let (acked, failed) = writer.stop();
    assert!(
        failed.is_empty(),
        "{} writes failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let mut keys = pre.clone();
    keys.extend(acked);
    reads += read_all(&c, &live, &keys, "at the end");
    let within = Duration::from_secs(60);
    wait_exactly_n(&c, &live, &keys, N, within);
    eprintln!(
        "every key back on {N} nodes {:?} after DYN.LEAVE n4 (the exact-N wait after the commit is limited to {within:?}); {} keys, {reads} reads, 0 missed, 0 failed writes ({} reads and {} writes asked again after a timeout), {:?}",
        removed_at.elapsed(),
        keys.len(),
        RETRIED.load(Ordering::SeqCst),
        WRITES_RETRIED.load(Ordering::SeqCst),
        started.elapsed()
    );
}
