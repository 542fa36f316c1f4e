//! The hint store suite, run against [`FjallHints`] and [`MemoryHints`],
//! plus fjall recovery (counts rebuilt, old records upgraded, unreadable
//! ones discarded) and the memory crash model.

use super::{edge_keys, object};
use bytes::Bytes;
use dynkv::core::{NodeId, Object, Payload, VersionVector, ring_hash};
use dynkv::store::FsyncPolicy;
use dynkv::store::codec::{encode_object, hint_key};
use dynkv::store::fjall_store::FjallStore;
use dynkv::store::hints::{HintLimits, HintPut, Hints};
use dynkv::store::memory_hints::MemoryHints;
use std::collections::BTreeMap;
use std::time::Duration;

const LIMITS: HintLimits = HintLimits {
    max_per_target: 4,
    ttl_ms: 1_000,
};

fn n(name: &str) -> NodeId {
    NodeId::new(name)
}

/// A write of `value` coordinated by `node` (concurrent with other nodes').
fn write_by(node: &str, value: &str) -> Object {
    let mut obj = Object::new();
    obj.update(
        &VersionVector::new(),
        &NodeId::new(node),
        Payload::value(value.to_string()),
        1,
    );
    obj
}

fn merged(a: &Object, b: &Object) -> Object {
    let mut m = a.clone();
    m.merge(b);
    m
}

async fn put<H: Hints>(h: &H, target: &str, key: &[u8], obj: &Object, now: u64) -> HintPut {
    h.put(&n(target), Bytes::copy_from_slice(key), obj.clone(), now)
        .await
        .expect("put hint")
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<NodeId, u64> {
    pairs.iter().map(|(t, c)| (n(t), *c)).collect()
}

async fn conformance<H: Hints>(h: &H) {
    let long1 = Bytes::from(vec![b'k'; 65_536]);
    let mut long2 = long1.to_vec();
    long2[65_535] = b'j';
    let long2 = Bytes::from(long2);
    assert!(h.counts().is_empty());
    assert_eq!(h.dropped(), 0);
    assert!(h.repair_needed().expect("repairs").is_empty());

    // Writes for one key merge into one hint.
    let w1 = write_by("c1", "1");
    let w2 = write_by("c2", "2");
    assert_eq!(put(h, "n2", b"a", &w1, 100).await, HintPut::Stored);
    assert_eq!(put(h, "n2", b"a", &w2, 200).await, HintPut::Stored);
    let both = merged(&w1, &w2);
    assert_eq!(h.get(&n("n2"), b"a").expect("get"), Some(both.clone()));
    assert_eq!(h.get(&n("n3"), b"a").expect("get"), None);
    assert_eq!(h.counts(), counts(&[("n2", 1)]));

    // Long keys sharing their stored prefix, and the empty key, are hints
    // of their own.
    assert_eq!(
        put(h, "n2", &long1, &object("l1"), 100).await,
        HintPut::Stored
    );
    assert_eq!(
        put(h, "n2", &long2, &object("l2"), 100).await,
        HintPut::Stored
    );
    assert_eq!(put(h, "n2", b"", &object("e"), 100).await, HintPut::Stored);
    assert_eq!(h.get(&n("n2"), &long1).expect("get"), Some(object("l1")));
    assert_eq!(h.get(&n("n2"), &long2).expect("get"), Some(object("l2")));
    assert_eq!(h.get(&n("n2"), b"").expect("get"), Some(object("e")));
    assert_eq!(h.counts(), counts(&[("n2", 4)]));

    // At the cap a new key is dropped and recorded for repair; a key
    // already held still merges; other targets have their own cap.
    assert_eq!(put(h, "n2", b"b", &w1, 300).await, HintPut::Dropped);
    assert_eq!(h.get(&n("n2"), b"b").expect("get"), None);
    assert_eq!(h.dropped(), 1);
    assert_eq!(h.repair_needed().expect("repairs"), vec![ring_hash(b"b")]);
    let w3 = write_by("c3", "3");
    assert_eq!(put(h, "n2", b"a", &w3, 300).await, HintPut::Stored);
    let all_a = merged(&both, &w3);
    assert_eq!(put(h, "n3", b"a", &w1, 1_500).await, HintPut::Stored);
    assert_eq!(h.counts(), counts(&[("n2", 4), ("n3", 1)]));

    // Listing returns whole keys, bounded by count and bytes.
    let listed = h.list(&n("n2"), 100, usize::MAX).await.expect("list");
    let listed: BTreeMap<Bytes, Object> = listed.into_iter().collect();
    let expected: BTreeMap<Bytes, Object> = [
        (Bytes::from("a"), all_a.clone()),
        (long1.clone(), object("l1")),
        (long2.clone(), object("l2")),
        (Bytes::new(), object("e")),
    ]
    .into_iter()
    .collect();
    assert_eq!(listed, expected);
    assert_eq!(
        h.list(&n("n2"), 2, usize::MAX).await.expect("list").len(),
        2
    );
    assert_eq!(h.list(&n("n2"), 100, 1).await.expect("list").len(), 1);
    assert_eq!(
        h.list(&n("n2"), 0, usize::MAX).await.expect("list").len(),
        0
    );
    assert_eq!(
        h.list(&n("n3"), 100, usize::MAX).await.expect("list").len(),
        1
    );
    assert!(
        h.list(&n("n9"), 100, usize::MAX)
            .await
            .expect("list")
            .is_empty()
    );

    // Delivery removes a hint only if nothing was merged in since.
    let removed = h
        .remove_if_unchanged(&n("n2"), Bytes::from("a"), both.clone())
        .await
        .expect("remove");
    assert!(!removed, "a write merged in after listing keeps the hint");
    let removed = h
        .remove_if_unchanged(&n("n2"), Bytes::from("a"), all_a.clone())
        .await
        .expect("remove");
    assert!(removed);
    assert_eq!(h.get(&n("n2"), b"a").expect("get"), None);
    assert_eq!(h.counts(), counts(&[("n2", 3), ("n3", 1)]));

    // Discarding drops the hint and records its partition for repair.
    h.discard(&n("n2"), long1.clone()).await.expect("discard");
    h.discard(&n("n2"), Bytes::from("never held"))
        .await
        .expect("discard");
    assert_eq!(h.get(&n("n2"), &long1).expect("get"), None);
    assert_eq!(h.get(&n("n2"), &long2).expect("get"), Some(object("l2")));
    assert_eq!(h.dropped(), 2);
    assert_eq!(h.counts(), counts(&[("n2", 2), ("n3", 1)]));
    let mut want = vec![ring_hash(b"b"), ring_hash(&long1)];
    want.sort();
    assert_eq!(h.repair_needed().expect("repairs"), want);

    // Expiry drops hints older than the TTL (first stored at 100 here).
    assert_eq!(h.expire(1_099).await.expect("expire"), 0);
    assert_eq!(h.expire(1_100).await.expect("expire"), 2);
    assert_eq!(h.counts(), counts(&[("n3", 1)]));
    assert_eq!(h.dropped(), 4);
    let repairs = h.repair_needed().expect("repairs");
    assert!(repairs.contains(&ring_hash(&long2)) && repairs.contains(&ring_hash(b"")));
    assert_eq!(h.expire(2_499).await.expect("expire"), 0);
    assert_eq!(h.expire(2_500).await.expect("expire"), 1);
    assert!(h.counts().is_empty());

    // Merging keeps the first store time: a busy key still expires.
    assert_eq!(put(h, "n2", b"x", &w1, 3_000).await, HintPut::Stored);
    assert_eq!(put(h, "n2", b"x", &w2, 3_900).await, HintPut::Stored);
    assert_eq!(h.expire(3_999).await.expect("expire"), 0);
    assert_eq!(h.expire(4_000).await.expect("expire"), 1);

    // Repaired partitions are forgotten.
    h.repaired(vec![ring_hash(b"b")]).await.expect("repaired");
    assert!(
        !h.repair_needed()
            .expect("repairs")
            .contains(&ring_hash(b"b"))
    );

    // Names hints cannot be kept for are refused, not stored mangled.
    assert!(
        h.put(&n("bad\0name"), Bytes::from("a"), w1.clone(), 0)
            .await
            .is_err()
    );
    assert!(
        h.put(&n(&"n".repeat(2_000)), Bytes::from("a"), w1.clone(), 0)
            .await
            .is_err()
    );
    assert_eq!(h.get(&n("bad\0name"), b"a").expect("get"), None);
    assert!(h.counts().is_empty());

    // Every edge key round-trips (the cap is per target: one target each).
    for (i, key) in edge_keys().iter().enumerate() {
        let target = format!("t{i}");
        assert_eq!(
            put(h, &target, key, &object("edge"), 5_000).await,
            HintPut::Stored
        );
        let listed = h.list(&n(&target), 10, usize::MAX).await.expect("list");
        assert_eq!(listed, vec![(key.clone(), object("edge"))]);
    }

    h.clear().await.expect("clear");
    assert!(h.counts().is_empty());
    assert_eq!(h.dropped(), 0);
    assert!(h.repair_needed().expect("repairs").is_empty());
}

#[tokio::test]
async fn memory_hints_conform() {
    conformance(&MemoryHints::new_with(FsyncPolicy::Always, LIMITS)).await;
}

#[tokio::test]
async fn fjall_hints_conform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FjallStore::open(dir.path(), FsyncPolicy::Always).expect("open");
    conformance(&store.hints(LIMITS).expect("hints")).await;
}

#[tokio::test]
async fn memory_hints_crash_loses_exactly_the_unsynced_changes() {
    let h = MemoryHints::new_with(FsyncPolicy::Everysec, LIMITS);
    put(&h, "n2", b"a", &object("1"), 10).await;
    h.sync();
    put(&h, "n2", b"b", &object("2"), 20).await;
    h.discard(&n("n2"), Bytes::from("a"))
        .await
        .expect("discard");
    assert_eq!(h.counts(), counts(&[("n2", 1)]));
    h.crash().expect("crash");
    assert_eq!(h.get(&n("n2"), b"a").expect("get"), Some(object("1")));
    assert_eq!(h.get(&n("n2"), b"b").expect("get"), None);
    assert!(h.repair_needed().expect("repairs").is_empty());
    assert_eq!(h.counts(), counts(&[("n2", 1)]));
    assert_eq!(h.dropped(), 0, "a restarted node starts counting again");

    let h = MemoryHints::new_with(FsyncPolicy::Always, LIMITS);
    put(&h, "n2", b"a", &object("1"), 10).await;
    put(&h, "n2", b"b", &object("2"), 20).await;
    h.discard(&n("n2"), Bytes::from("a"))
        .await
        .expect("discard");
    h.crash().expect("crash");
    assert_eq!(h.get(&n("n2"), b"a").expect("get"), None);
    assert_eq!(h.get(&n("n2"), b"b").expect("get"), Some(object("2")));
    assert_eq!(h.repair_needed().expect("repairs"), vec![ring_hash(b"a")]);
    assert_eq!(h.counts(), counts(&[("n2", 1)]));
}

#[tokio::test]
async fn memory_hints_discard_unreadable_records_when_listed() {
    let h = MemoryHints::new_with(FsyncPolicy::Always, LIMITS);
    put(&h, "n2", b"good", &object("1"), 10).await;
    h.put_raw(hint_key(&n("n2"), b"bad"), vec![9, 9, 9])
        .expect("raw");
    h.crash().expect("recount");
    assert_eq!(h.counts(), counts(&[("n2", 2)]));
    let listed = h.list(&n("n2"), 10, usize::MAX).await.expect("list");
    assert_eq!(listed, vec![(Bytes::from("good"), object("1"))]);
    assert_eq!(h.counts(), counts(&[("n2", 1)]));
    assert_eq!(h.dropped(), 1);
    assert_eq!(h.repair_needed().expect("repairs"), vec![ring_hash(b"bad")]);
}

#[tokio::test]
async fn fjall_hints_recover_counts_upgrade_old_records_and_drop_unreadable_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = Bytes::from(vec![b'q'; 70_000]);
    {
        let store = FjallStore::open(dir.path(), FsyncPolicy::Everysec).expect("open");
        let h = store.hints(LIMITS).expect("hints");
        for i in 0..3 {
            put(&h, "n2", format!("k{i}").as_bytes(), &object("v"), 10).await;
        }
        assert_eq!(
            put(&h, "n2", &long, &object("long"), 10).await,
            HintPut::Stored
        );
        put(&h, "n3", b"k0", &object("v"), 10).await;
        assert_eq!(h.counts(), counts(&[("n2", 4), ("n3", 1)]));
        assert_eq!(
            put(&h, "n2", b"k9", &object("v"), 10).await,
            HintPut::Dropped
        );
        dynkv::store::ReplicaStore::sync(&store)
            .await
            .expect("sync");
    }
    // The writer thread holds the database until its channel closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    {
        // What an older version left, and a record gone bad.
        let db = fjall::Database::builder(dir.path().join("fjall"))
            .open()
            .expect("open fjall");
        let hints = db
            .keyspace("hints", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        hints
            .insert(hint_key(&n("n4"), b"old"), encode_object(&object("v1")))
            .expect("insert");
        hints
            .insert(hint_key(&n("n4"), b"bad"), vec![3u8, 0xff])
            .expect("insert");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let before_open = wall_ms();
    let store = FjallStore::open(dir.path(), FsyncPolicy::Everysec).expect("reopen");
    let h = store.hints(LIMITS).expect("hints");
    assert_eq!(h.counts(), counts(&[("n2", 4), ("n3", 1), ("n4", 2)]));
    assert_eq!(h.dropped(), 0, "dropped counts since start");
    assert_eq!(h.repair_needed().expect("repairs"), vec![ring_hash(b"k9")]);
    assert_eq!(h.get(&n("n2"), b"k2").expect("get"), Some(object("v")));
    assert_eq!(h.get(&n("n2"), &long).expect("get"), Some(object("long")));
    // The cap still holds after the restart.
    assert_eq!(
        put(&h, "n2", b"new", &object("v"), 10).await,
        HintPut::Dropped
    );

    // The old record reads, and its TTL runs from the upgrade.
    assert_eq!(h.get(&n("n4"), b"old").expect("get"), Some(object("v1")));
    let listed = h.list(&n("n4"), 10, usize::MAX).await.expect("list");
    assert_eq!(listed, vec![(Bytes::from("old"), object("v1"))]);
    assert_eq!(h.counts().get(&n("n4")), Some(&1), "the bad record is gone");
    assert!(
        h.repair_needed()
            .expect("repairs")
            .contains(&ring_hash(b"bad"))
    );
    // n2 and n3's hints (stored at 10) expire; the upgraded one not yet.
    assert_eq!(h.expire(before_open).await.expect("expire"), 5);
    assert_eq!(h.counts(), counts(&[("n4", 1)]));
    assert_eq!(h.expire(u64::MAX).await.expect("expire"), 1);
    assert!(h.counts().is_empty());
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
