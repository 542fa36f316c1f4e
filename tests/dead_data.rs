//! Dead data stays dead, cluster-wide, with real `dynkv` processes on
//! loopback (3 nodes, N=3 R=2 W=2, `--tombstone-grace 2`):
//!
//! - deletes and expiries made while a replica is down (kill -9) for three
//!   grace periods are not purged while it is down, do not come back when
//!   it returns with its old data, and are then purged from every replica;
//! - a replica cut off by a partition, whose hints were dropped, holds the
//!   old values: the purge itself hands it the tombstones before anything
//!   is purged, so it cannot bring the values back;
//! - FLUSHALL's tombstones are purged by the same rule.
//!
//! Every check reads back through the client port (GET, DYN.GET R 3,
//! DYN.DEBUG LOCAL, INFO dynamo). Sizes are CI-sized; the full-size run is
//! `scripts/dead-data-full.sh` (`DEAD_DATA_KEYS`, default 1000):
//!
//! ```text
//! DEAD_DATA_KEYS=20000 cargo test --release --test dead_data -- --nocapture --test-threads=1
//! ```

mod common;

use common::cluster::{
    CONVERGE_TIMEOUT, Cluster, Versions, args, assert_none, info_int, name, parse_versions,
    pipeline, wait_for,
};
use common::{Reply, is_real_redis};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `--tombstone-grace` of every node, seconds.
const GRACE_S: u64 = 2;
/// Deadline for hints to drain, tombstones to be purged, views to agree.
const SETTLE: Duration = Duration::from_secs(45);

static SERIAL: Mutex<()> = Mutex::new(());

/// The tests of this file run one at a time: each starts three nodes.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn keys_per_kind() -> usize {
    std::env::var("DEAD_DATA_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

fn start(extra: &[&str]) -> Cluster {
    let grace = GRACE_S.to_string();
    let mut flags = vec!["--fsync", "everysec", "--tombstone-grace", &grace];
    flags.extend_from_slice(extra);
    let c = Cluster::start_with(3, (3, 2, 2), &flags, |_| 0);
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
    c
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

fn info_num(c: &Cluster, i: usize, field: &str) -> i64 {
    let info = c
        .info(i)
        .unwrap_or_else(|e| panic!("INFO on {}: {e}", name(i)));
    info_int(&info, field).unwrap_or_else(|e| panic!("{}: {e}", name(i)))
}

/// Runs `cmd key` for every key through node `i`, pipelined.
fn each(c: &Cluster, i: usize, keys: &[String], cmd: &[&str]) -> Vec<Reply> {
    let cmds: Vec<_> = keys
        .iter()
        .map(|k| {
            let mut a = cmd.to_vec();
            a.push(k.as_str());
            args(&a)
        })
        .collect();
    pipeline(&mut c.conn(i), &cmds)
}

/// Every key reads nil through every node in `nodes` (plain GET).
fn assert_all_nil(c: &Cluster, nodes: &[usize], keys: &[String], when: &str) {
    for &i in nodes {
        let bad: Vec<_> = keys
            .iter()
            .zip(each(c, i, keys, &["GET"]))
            .filter(|(_, r)| *r != Reply::Nil)
            .map(|(k, r)| (k.clone(), r))
            .collect();
        assert_none(&bad, &format!("GET via {} {when}", name(i)));
    }
}

/// A sample of keys read with DYN.GET R 3 through every node shows no value.
fn assert_no_value_r3(c: &Cluster, keys: &[String], when: &str) {
    for i in 0..3 {
        let bad: Vec<_> = keys
            .iter()
            .step_by(25)
            .filter_map(|k| match c.dyn_get(i, k, Some(3)) {
                Ok(v) if v.values.iter().all(|x| x.is_none()) => None,
                other => Some((k.clone(), other)),
            })
            .collect();
        assert_none(&bad, &format!("DYN.GET R 3 via {} {when}", name(i)));
    }
}

/// DYN.DEBUG LOCAL of every key on node `i`.
fn local_all(c: &Cluster, i: usize, keys: &[String]) -> Vec<(String, Versions)> {
    keys.iter()
        .cloned()
        .zip(
            each(c, i, keys, &["DYN.DEBUG", "LOCAL"])
                .iter()
                .map(|r| parse_versions(r).unwrap_or_else(|e| panic!("{}: {e}", name(i)))),
        )
        .collect()
}

/// Waits until no node holds any record (value or tombstone) of `keys`
/// and every node's INFO counts 0 tombstones.
fn wait_purged(c: &Cluster, keys: &[String]) -> Duration {
    let t = Instant::now();
    wait_for(SETTLE, "every record purged from every node", || {
        for i in 0..3 {
            let held: Vec<_> = local_all(c, i, keys)
                .into_iter()
                .filter(|(_, v)| !v.values.is_empty())
                .collect();
            if let Some(first) = held.first() {
                return Err(format!(
                    "{} still holds {} records, e.g. {first:?}",
                    name(i),
                    held.len()
                ));
            }
            let tombstones = info_num(c, i, "tombstones");
            if tombstones != 0 {
                return Err(format!("{} reports tombstones:{tombstones}", name(i)));
            }
        }
        Ok(())
    });
    t.elapsed()
}

/// Waits until no node has a hint pending.
fn wait_hints_drained(c: &Cluster) {
    wait_for(SETTLE, "hints drained on every node", || {
        for i in 0..3 {
            let pending = info_num(c, i, "hints_pending");
            if pending != 0 {
                return Err(format!("{} has {pending} hints pending", name(i)));
            }
        }
        Ok(())
    });
}

/// Waits until node `i` holds a copy (any version) of every key.
fn wait_held(c: &Cluster, i: usize, keys: &[String]) {
    wait_for(SETTLE, &format!("{} to hold every key", name(i)), || {
        let missing = local_all(c, i, keys)
            .into_iter()
            .filter(|(_, v)| v.values.is_empty())
            .count();
        match missing {
            0 => Ok(()),
            m => Err(format!("{m} keys missing")),
        }
    });
}

/// 1,000 deletes and 1,000 `PX 500` expiries happen while n3 is down
/// (kill -9) for three grace periods: n1 and n2 keep the tombstones, n3
/// comes back with the old values on disk, and after hint delivery no key
/// is visible anywhere and every record is purged from every replica.
#[test]
fn deletes_and_expiries_missed_by_a_dead_replica_stay_dead_and_are_purged() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let t0 = Instant::now();
    let k = keys_per_kind();
    let mut c = start(&[]);
    let deleted = keys("del", k);
    let expiring = keys("ttl", k);
    let all: Vec<String> = deleted.iter().chain(&expiring).cloned().collect();

    let ok = Reply::Simple("OK".into());
    let set = |keys: &[String], extra: &[&str]| {
        let cmds: Vec<_> = keys
            .iter()
            .map(|key| {
                let mut a = vec!["SET", key.as_str(), "value"];
                a.extend_from_slice(extra);
                args(&a)
            })
            .collect();
        let bad: Vec<_> = keys
            .iter()
            .zip(pipeline(&mut c.conn(0), &cmds))
            .filter(|(_, r)| *r != ok)
            .map(|(k, r)| (k.clone(), r))
            .collect();
        assert_none(&bad, &format!("SET {extra:?} via n1"));
    };
    set(&deleted, &[]);
    // n3 must hold the values that it will miss the end of.
    wait_held(&c, 2, &deleted);
    // Long enough to reach n3 before the kill, short enough to expire
    // while it is down.
    set(&expiring, &["PX", "500"]);
    // Every expiry was computed before its SET was answered.
    let all_expired_at = Instant::now() + Duration::from_millis(550);
    wait_held(&c, 2, &expiring);
    c.kill9(2);
    let down_at = Instant::now();

    let dels = each(&c, 0, &deleted, &["DEL"]);
    let bad: Vec<_> = deleted
        .iter()
        .zip(dels)
        .filter(|(_, r)| *r != Reply::Int(1))
        .collect();
    assert_none(&bad, "DEL via n1 with n3 down");
    // On a fast run the DELs are done before the last PX 500 is due.
    std::thread::sleep(all_expired_at.saturating_duration_since(Instant::now()));
    assert_all_nil(&c, &[0, 1], &all, "with n3 down");

    // Three grace periods with n3 down: the sweepers of n1 and n2 turn the
    // expiries into tombstones, and nothing may be purged.
    std::thread::sleep(Duration::from_secs(3 * GRACE_S).saturating_sub(down_at.elapsed()));
    wait_for(SETTLE, "n1 and n2 to count every tombstone", || {
        for i in 0..2 {
            let t = info_num(&c, i, "tombstones");
            if t < 2 * k as i64 {
                return Err(format!("{} counts {t} tombstones", name(i)));
            }
        }
        Ok(())
    });
    for i in 0..2 {
        assert_eq!(
            info_num(&c, i, "tombstones_purged"),
            0,
            "{} purged a tombstone while an owner was down",
            name(i)
        );
        let gone: Vec<_> = local_all(&c, i, &all)
            .into_iter()
            .filter(|(_, v)| v.values != vec![None])
            .collect();
        assert_none(
            &gone,
            &format!("{} should hold exactly one tombstone per key", name(i)),
        );
    }
    eprintln!(
        "n3 down for {:?}; n1/n2 hold {} tombstones each, none purged",
        down_at.elapsed(),
        2 * k
    );

    c.restart(2);
    let back = Instant::now();
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
    assert_all_nil(&c, &[0, 1, 2], &all, "right after n3 returned");
    wait_hints_drained(&c);
    eprintln!("hints drained {:?} after n3 returned", back.elapsed());
    assert_all_nil(&c, &[0, 1, 2], &all, "after hint delivery");
    assert_no_value_r3(&c, &all, "after hint delivery");

    let purge = wait_purged(&c, &all);
    eprintln!(
        "all {} records purged from all 3 nodes {:?} after the hints drained ({:?} after n3 returned)",
        all.len(),
        purge,
        back.elapsed()
    );
    assert_all_nil(&c, &[0, 1, 2], &all, "after the purge");
    assert_no_value_r3(&c, &all, "after the purge");
    let purged: i64 = (0..3).map(|i| info_num(&c, i, "tombstones_purged")).sum();
    let rounds: i64 = (0..3).map(|i| info_num(&c, i, "purge_rounds")).sum();
    assert!(
        purged >= 3 * all.len() as i64,
        "tombstones_purged over the nodes is {purged}, want >= {}",
        3 * all.len()
    );
    assert!(rounds > 0, "no purge round was counted");
    eprintln!(
        "tombstones_purged {purged} in {rounds} rounds; total {:?}",
        t0.elapsed()
    );

    // Writes after the purge start afresh.
    assert_eq!(c.q(1, &["SET", "del:0", "again"]), ok);
    assert_eq!(c.q(2, &["GET", "del:0"]), Reply::Bulk(b"again".to_vec()));
}

/// n3 is cut off (DYN.DEBUG PARTITION) and its hints are dropped (limit of
/// one hint per target): it keeps the old values of 300 deleted keys.
/// While it is unreachable nothing is purged; once the partition heals the
/// purge hands it the tombstones first, so no value comes back and then
/// every record is purged. FLUSHALL's tombstones go the same way.
#[test]
fn a_partitioned_replica_without_hints_cannot_bring_deletes_back() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let t0 = Instant::now();
    let c = start(&["--hint-max-per-target", "1"]);
    let doomed = keys("part", 300);
    let cmds: Vec<_> = doomed.iter().map(|k| args(&["SET", k, "old"])).collect();
    let replies = pipeline(&mut c.conn(0), &cmds);
    assert!(replies.iter().all(|r| *r == Reply::Simple("OK".into())));
    wait_held(&c, 2, &doomed);

    c.cut(&[2], &[0, 1]);
    c.wait_status(0, &[0, 1], CONVERGE_TIMEOUT);
    c.wait_status(1, &[0, 1], CONVERGE_TIMEOUT);
    let dels = each(&c, 0, &doomed, &["DEL"]);
    assert!(
        dels.iter().all(|r| *r == Reply::Int(1)),
        "DEL via n1: {:?}",
        &dels[..3]
    );
    assert_all_nil(&c, &[0, 1], &doomed, "with n3 cut off");
    std::thread::sleep(Duration::from_secs(3 * GRACE_S + 1));

    // n3 missed the deletes and has no hint to bring them (all but one
    // dropped); n1 and n2 still hold every tombstone.
    let stale = local_all(&c, 2, &doomed)
        .into_iter()
        .filter(|(_, v)| v.values == vec![Some("old".to_string())])
        .count();
    assert_eq!(stale, doomed.len(), "n3 should still hold every old value");
    let hinted: i64 = (0..2).map(|i| info_num(&c, i, "hints_pending")).sum();
    assert!(hinted <= 2, "hints were not dropped: {hinted} pending");
    for i in 0..2 {
        assert_eq!(info_num(&c, i, "tombstones_purged"), 0, "{}", name(i));
        let held = local_all(&c, i, &doomed)
            .into_iter()
            .filter(|(_, v)| v.values == vec![None])
            .count();
        assert_eq!(
            held,
            doomed.len(),
            "{} should keep every tombstone",
            name(i)
        );
    }

    c.heal(&[0, 1, 2]);
    let healed = Instant::now();
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
    let purge = wait_purged(&c, &doomed);
    eprintln!("partition healed: n3's stale copies purged with the rest in {purge:?}");
    assert_all_nil(&c, &[0, 1, 2], &doomed, "after the purge");
    assert_no_value_r3(&c, &doomed, "after the purge");
    // Nothing is left anywhere to be repaired back: still nil a grace later.
    std::thread::sleep(Duration::from_secs(GRACE_S));
    assert_all_nil(&c, &[2, 0, 1], &doomed, "a grace period after the purge");
    eprintln!("healed to clean in {:?}", healed.elapsed());

    // FLUSHALL writes versioned tombstones; the purge collects them too.
    let flushed = keys("flush", 300);
    let cmds: Vec<_> = flushed.iter().map(|k| args(&["SET", k, "v"])).collect();
    pipeline(&mut c.conn(1), &cmds);
    for i in 0..3 {
        wait_held(&c, i, &flushed);
    }
    assert_eq!(c.q(1, &["FLUSHALL"]), Reply::Simple("OK".into()));
    assert_all_nil(&c, &[0, 1, 2], &flushed, "after FLUSHALL");
    let purge = wait_purged(&c, &flushed);
    eprintln!("FLUSHALL tombstones purged everywhere in {purge:?}");
    assert_all_nil(&c, &[0, 1, 2], &flushed, "after FLUSHALL's purge");
    eprintln!("partition test total {:?}", t0.elapsed());
}
