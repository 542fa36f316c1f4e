//! Merkle-tree anti-entropy with real `dynkv` processes on loopback and
//! `--read-repair off`, so only anti-entropy can repair a replica:
//!
//! 1. node 3 loses its disk (kill -9, data dir wiped, restarted under the
//!    same name, hence `rebuilding:1`); with no client read at all, every
//!    key comes back on it (checked with `DYN.DEBUG LOCAL`), `rebuilding`
//!    clears, and the three nodes end with identical versions and
//!    identical Merkle roots;
//! 2. 1 % of the keys are overwritten while node 3 is cut off (hints
//!    capped at one, so handoff cannot fix them); after the heal the
//!    traffic anti-entropy needs is compared with the bytes that differ.
//!
//! Figures are printed (`--nocapture`). The size is `AE_KEYS` (default
//! 5000, CI); `scripts/anti-entropy-full.sh` runs it full size.

mod common;

use common::cluster::{
    CONVERGE_TIMEOUT, Cluster, TEST_SECRET, info_int, name, wait_for, wait_until,
};
use common::{Reply, Server, is_real_redis};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn keys_count() -> usize {
    std::env::var("AE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

fn key(i: usize) -> String {
    format!("ae:{i}")
}

fn info_num(c: &Cluster, i: usize, field: &str) -> i64 {
    let info = c
        .info(i)
        .unwrap_or_else(|e| panic!("INFO on {}: {e}", name(i)));
    info_int(&info, field).unwrap_or_else(|e| panic!("{e}"))
}

fn info_text(c: &Cluster, i: usize, field: &str) -> String {
    let info = c
        .info(i)
        .unwrap_or_else(|e| panic!("INFO on {}: {e}", name(i)));
    info.get(field)
        .unwrap_or_else(|| panic!("INFO of {} has no {field}", name(i)))
        .clone()
}

fn merkle_all(c: &Cluster, i: usize) -> Result<String, String> {
    match c.q(i, &["DYN.DEBUG", "MERKLE", "ALL"]) {
        Reply::Bulk(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        other => Err(format!("DYN.DEBUG MERKLE ALL on {}: {other:?}", name(i))),
    }
}

/// Keys (of `expected`) whose local copy on node `i` is not exactly the
/// expected single value.
fn missing_on(c: &Cluster, i: usize, expected: &[(String, String)]) -> Vec<String> {
    let keys: Vec<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
    c.local_many(i, &keys)
        .into_iter()
        .zip(expected)
        .filter(|(got, (_, v))| got.values != vec![Some(v.clone())])
        .map(|(_, (k, _))| k.clone())
        .collect()
}

/// SETs every pair through node 1; every one must succeed.
fn set_all(c: &Cluster, data: &[(String, String)]) {
    let bad = c.set_many(0, data);
    assert!(
        bad.is_empty(),
        "SETs failed: {:?}",
        &bad[..bad.len().min(5)]
    );
}

/// Sum of an INFO counter over all nodes.
fn total(c: &Cluster, field: &str) -> i64 {
    (0..c.size()).map(|i| info_num(c, i, field)).sum()
}

#[test]
fn a_lone_node_keeps_no_merkle_trees_until_a_peer_joins_and_then_covers_every_earlier_write() {
    if is_real_redis() {
        return;
    }
    let mut c = Cluster::start_with(1, (2, 1, 1), &["--fsync", "everysec"], |_| 0);
    let data: Vec<(String, String)> = (0..300)
        .map(|i| (format!("lone:{i}"), format!("value {i}")))
        .collect();
    set_all(&c, &data);
    match c.q(0, &["DYN.DEBUG", "MERKLE", "ALL"]) {
        Reply::Error(e) => assert!(e.contains("no peers"), "{e}"),
        other => panic!("a lone node answered DYN.DEBUG MERKLE ALL with {other:?}"),
    }

    // A second node joins; with N=2 both end up holding every key.
    let joiner = [
        "--node-name",
        &name(1),
        "--n",
        "2",
        "--r",
        "1",
        "--w",
        "1",
        "--join",
        &format!("127.0.0.1:{}", c.nodes[0].cluster_port()),
        "--fsync",
        "everysec",
        "--cluster-secret",
        TEST_SECRET,
    ]
    .map(String::from);
    let refs: Vec<&str> = joiner.iter().map(String::as_str).collect();
    c.nodes.push(Server::start_with(&refs));
    c.wait_converged(&[0, 1], CONVERGE_TIMEOUT);
    wait_until(
        Duration::from_secs(60),
        "both nodes to hold every key",
        || (0..2).all(|i| missing_on(&c, i, &data).is_empty()),
    );
    // Node 1's trees, built by the scan that started once it had a peer,
    // account for the writes made while it was alone: equal data, equal
    // roots.
    wait_for(Duration::from_secs(60), "equal Merkle roots", || {
        let (a, b) = (merkle_all(&c, 0)?, merkle_all(&c, 1)?);
        if a == b {
            Ok(a)
        } else {
            Err(format!("{} has {a}, {} has {b}", name(0), name(1)))
        }
    });
}

#[test]
fn anti_entropy_alone_rebuilds_a_replaced_disk_and_repairs_divergence() {
    if is_real_redis() {
        return;
    }
    let t0 = Instant::now();
    let n_keys = keys_count();
    let mut c = Cluster::start_with(
        3,
        (3, 2, 2),
        &[
            "--fsync",
            "everysec",
            "--read-repair",
            "off",
            "--anti-entropy-interval",
            "1",
            "--hint-max-per-target",
            "1",
        ],
        |_| 0,
    );
    let all = [0, 1, 2];
    c.wait_converged(&all, CONVERGE_TIMEOUT);
    for i in all {
        assert_eq!(info_text(&c, i, "read_repair"), "off");
        let cfg = c.q(i, &["CONFIG", "GET", "read-repair"]);
        assert_eq!(
            cfg,
            Reply::Array(vec![
                Reply::Bulk(b"read-repair".to_vec()),
                Reply::Bulk(b"off".to_vec())
            ]),
            "CONFIG GET read-repair on {}",
            name(i)
        );
    }

    // ~100-byte values.
    let data: Vec<(String, String)> = (0..n_keys)
        .map(|i| (key(i), format!("{i:08}-{}", "v".repeat(92))))
        .collect();
    set_all(&c, &data);
    // Every replica holds every key (N=3 of 3 nodes, W=2: the third copy
    // arrives in the background).
    wait_until(
        Duration::from_secs(30),
        "all replicas to hold every key",
        || all.iter().all(|&i| missing_on(&c, i, &data).is_empty()),
    );
    let root = wait_for(Duration::from_secs(30), "equal Merkle roots", || {
        let roots: Vec<String> = all
            .iter()
            .map(|&i| merkle_all(&c, i))
            .collect::<Result<_, _>>()?;
        if roots.iter().all(|r| r == &roots[0]) {
            Ok(roots[0].clone())
        } else {
            Err(format!("roots differ: {roots:?}"))
        }
    });
    eprintln!("{n_keys} keys on 3 replicas, Merkle ALL {root}");

    // -- 1. replaced disk ------------------------------------------------
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
    let before: BTreeMap<&str, i64> = ["ae_bytes_sent", "ae_bytes_received", "ae_keys_repaired"]
        .into_iter()
        .map(|f| (f, info_num(&c, 0, f) + info_num(&c, 1, f)))
        .collect();
    let restarted = Instant::now();
    c.restart(2);
    let rebuilding_at_start = info_text(&c, 2, "rebuilding");
    eprintln!("n3 restarted with an empty disk: rebuilding:{rebuilding_at_start}");
    let rebuild_limit = Duration::from_secs(30 + n_keys as u64 / 2000);
    wait_until(rebuild_limit, "n3 to hold every key again", || {
        missing_on(&c, 2, &data).is_empty()
    });
    let refilled = restarted.elapsed();
    wait_until(Duration::from_secs(30), "n3 to leave rebuilding", || {
        info_text(&c, 2, "rebuilding") == "0"
    });
    let rebuilt = restarted.elapsed();
    let roots = wait_for(Duration::from_secs(30), "equal Merkle roots again", || {
        let roots: Vec<String> = all
            .iter()
            .map(|&i| merkle_all(&c, i))
            .collect::<Result<_, _>>()?;
        if roots.iter().all(|r| r == &roots[0]) {
            Ok(roots)
        } else {
            Err(format!("roots differ: {roots:?}"))
        }
    });
    assert_eq!(
        roots[0], root,
        "the rebuilt cluster holds exactly the data of before"
    );
    // Identical versions: values and causal contexts, key by key.
    let keys: Vec<&str> = data.iter().map(|(k, _)| k.as_str()).collect();
    let local: Vec<_> = all.iter().map(|&i| c.local_many(i, &keys)).collect();
    for (j, k) in keys.iter().enumerate() {
        assert_eq!(local[0][j], local[2][j], "{k}: n1 and n3 differ");
        assert_eq!(local[1][j], local[2][j], "{k}: n2 and n3 differ");
    }
    let repaired_n3 = info_num(&c, 2, "ae_keys_repaired");
    let repaired_peers = info_num(&c, 0, "ae_keys_repaired") + info_num(&c, 1, "ae_keys_repaired")
        - before["ae_keys_repaired"];
    assert!(
        repaired_n3 + repaired_peers >= n_keys as i64,
        "anti-entropy repaired {repaired_n3} keys on n3 and pushed {repaired_peers}"
    );
    // No read repair ran: the cluster had no client read, and it is off.
    assert_eq!(total(&c, "read_repairs"), 0);
    let bytes = info_num(&c, 2, "ae_bytes_sent")
        + info_num(&c, 2, "ae_bytes_received")
        + info_num(&c, 0, "ae_bytes_sent")
        + info_num(&c, 0, "ae_bytes_received")
        + info_num(&c, 1, "ae_bytes_sent")
        + info_num(&c, 1, "ae_bytes_received")
        - before["ae_bytes_sent"]
        - before["ae_bytes_received"];
    eprintln!(
        "rebuild: {n_keys} keys back on n3 in {refilled:?} ({:.0} keys/s), rebuilding cleared after {rebuilt:?}; \
         n3 merged {repaired_n3} keys, peers pushed {repaired_peers}; {bytes} anti-entropy bytes",
        n_keys as f64 / refilled.as_secs_f64()
    );

    // -- 2. 1 % divergence -------------------------------------------------
    let diverged: Vec<(String, String)> = (0..n_keys)
        .step_by(100)
        .map(|i| (key(i), format!("{i:08}-new-{}", "w".repeat(988))))
        .collect();
    c.cut(&[2], &[0, 1]);
    wait_until(Duration::from_secs(20), "n1 to see n3 down", || {
        c.members(0)
            .map(|m| m.iter().any(|m| m.name == "n3" && m.status == "down"))
            .unwrap_or(false)
    });
    let bad = c.set_many(0, &diverged);
    assert!(
        bad.is_empty(),
        "SETs failed: {:?}",
        &bad[..bad.len().min(5)]
    );
    // Hints are capped at one per target: the rest were dropped.
    assert!(
        total(&c, "hints_dropped") >= diverged.len() as i64 - 2,
        "hints should have been dropped"
    );
    let stale = missing_on(&c, 2, &diverged);
    assert!(
        stale.len() >= diverged.len() - 2,
        "n3 must miss the writes made while it was cut off ({} of {} stale)",
        stale.len(),
        diverged.len()
    );
    let differing_bytes: usize = diverged.iter().map(|(k, v)| k.len() + v.len()).sum();
    let before_bytes = total(&c, "ae_bytes_sent") + total(&c, "ae_bytes_received");
    let before_repaired = total(&c, "ae_keys_repaired");
    let healed = Instant::now();
    c.heal(&all);
    wait_until(
        Duration::from_secs(30),
        "n3 to get the overwritten keys",
        || missing_on(&c, 2, &diverged).is_empty(),
    );
    let repair_time = healed.elapsed();
    let bytes = total(&c, "ae_bytes_sent") + total(&c, "ae_bytes_received") - before_bytes;
    let repaired = total(&c, "ae_keys_repaired") - before_repaired;
    wait_for(
        Duration::from_secs(30),
        "equal Merkle roots after the heal",
        || {
            let roots: Vec<String> = all
                .iter()
                .map(|&i| merkle_all(&c, i))
                .collect::<Result<_, _>>()?;
            if roots.iter().all(|r| r == &roots[0]) {
                Ok(())
            } else {
                Err(format!("roots differ: {roots:?}"))
            }
        },
    );
    assert_eq!(total(&c, "read_repairs"), 0);
    assert!(missing_on(&c, 2, &diverged).is_empty());
    let ratio = bytes as f64 / differing_bytes as f64;
    eprintln!(
        "divergence: {} of {n_keys} keys ({differing_bytes} bytes) repaired on n3 in {repair_time:?} \
         ({:.0} keys/s); anti-entropy moved {bytes} bytes = {ratio:.2}x the differing bytes; \
         {repaired} keys counted repaired; total {:?}",
        diverged.len(),
        diverged.len() as f64 / repair_time.as_secs_f64(),
        t0.elapsed()
    );
    // The exchange sends the differing objects plus hashes: a few times
    // the differing bytes at most, never the whole data set.
    let all_bytes: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(
        (bytes as usize) < all_bytes / 2,
        "{bytes} bytes exchanged for {differing_bytes} differing (data set {all_bytes})"
    );
}
