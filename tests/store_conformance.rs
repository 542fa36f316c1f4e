//! One suite run against both replica stores (fjall on disk, memory), plus
//! fjall-only recovery, crash, backpressure and corrupt-record tests on
//! real files, and the memory store's crash model.

#[path = "store_conformance/hints.rs"]
mod hints;

use bytes::Bytes;
use dynkv::core::merkle::record_digest;
use dynkv::core::{NodeId, Object, Payload, VersionVector, ring_hash};
use dynkv::store::codec::{LONG_KEY, encode_object, encode_record, record_key};
use dynkv::store::fjall_store::{FjallStore, WRITER_QUEUE};
use dynkv::store::memory::MemoryStore;
use dynkv::store::{FsyncPolicy, ReplicaStore, Write, queue, queue_quick, update};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

fn object(value: &str) -> Object {
    let mut obj = Object::new();
    obj.update(
        &VersionVector::new(),
        &NodeId::new("n1"),
        Payload::value(value.to_string()),
        1,
    );
    obj
}

async fn put<S: ReplicaStore>(store: &S, key: &str, value: &str) {
    let obj = object(value);
    update(store, Bytes::from(key.to_string()), move |_| {
        (Write::Put(obj), ())
    })
    .await
    .expect("write");
}

async fn conformance<S: ReplicaStore>(store: S) {
    assert_eq!(store.get(b"missing").expect("get"), None);

    put(&store, "a", "1").await;
    put(&store, "b", "2").await;
    assert_eq!(store.get(b"a").expect("get"), Some(object("1")));

    // An update sees the current record and its result comes back after commit.
    let seen = update(&store, Bytes::from("a"), |cur| {
        let had = cur.is_some();
        (Write::Keep, had)
    })
    .await
    .expect("update");
    assert!(seen);

    // Concurrent updates of one key are serialised: none is lost.
    let mut tasks = Vec::new();
    for _ in 0..50 {
        tasks.push(update(&store, Bytes::from("counter"), |cur| {
            let n = cur
                .and_then(|o| {
                    o.siblings
                        .first()
                        .and_then(|s| s.payload.live_data(0).cloned())
                })
                .map_or(0, |b| {
                    String::from_utf8_lossy(&b).parse::<u64>().unwrap_or(0)
                });
            let next = n + 1;
            (Write::Put(object(&next.to_string())), next)
        }));
    }
    let mut results: Vec<u64> = Vec::new();
    for t in tasks {
        results.push(t.await.expect("update"));
    }
    results.sort();
    assert_eq!(results, (1..=50).collect::<Vec<u64>>());
    assert_eq!(store.get(b"counter").expect("get"), Some(object("50")));

    // Scan returns ring order with each key's hash, from any starting hash.
    let all = store.scan(0, 100).await.expect("scan");
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].0 <= w[1].0));
    for (hash, key, _) in &all {
        assert_eq!(*hash, ring_hash(key));
    }
    let from_second = store.scan(all[1].0, 100).await.expect("scan");
    assert_eq!(from_second.len(), 2);
    assert_eq!(store.scan(0, 1).await.expect("scan").len(), 1);

    update(&store, Bytes::from("b"), |_| (Write::Remove, ()))
        .await
        .expect("remove");
    assert_eq!(store.get(b"b").expect("get"), None);

    store.clear().await.expect("clear");
    assert!(store.scan(0, 100).await.expect("scan").is_empty());
    store.sync().await.expect("sync");
    assert_eq!(store.queue_depth(), 0, "nothing is left queued");
}

/// Keys around every length limit: the empty key, the long-key threshold
/// and fjall's 64 KiB key limit, plus two long keys that differ only after
/// the part kept in the record key.
fn edge_keys() -> Vec<Bytes> {
    let mut keys: Vec<Bytes> = [
        0,
        1,
        LONG_KEY - 1,
        LONG_KEY,
        LONG_KEY + 1,
        65_535,
        65_536,
        100_000,
    ]
    .iter()
    .map(|&n| Bytes::from(vec![b'k'; n]))
    .collect();
    let mut twin = vec![b'k'; 65_536];
    twin[65_535] = b'j';
    keys.push(Bytes::from(twin));
    let mut twin = vec![b'k'; LONG_KEY + 1];
    twin[LONG_KEY] = b'j';
    keys.push(Bytes::from(twin));
    keys
}

async fn long_keys<S: ReplicaStore>(store: &S) {
    let keys = edge_keys();
    for (i, key) in keys.iter().enumerate() {
        let obj = object(&format!("v{i}"));
        update(store, key.clone(), move |_| (Write::Put(obj), ()))
            .await
            .expect("write of an edge key");
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            store.get(key).expect("get"),
            Some(object(&format!("v{i}"))),
            "key of {} bytes",
            key.len()
        );
    }
    // A key one byte past a stored long key is another key.
    assert_eq!(store.get(&vec![b'k'; 100_001]).expect("get"), None);

    // Scan hands back every whole key, at its ring hash.
    let mut scanned = store.scan(0, 1_000).await.expect("scan");
    assert_eq!(scanned.len(), keys.len());
    for (hash, key, _) in &scanned {
        assert_eq!(*hash, ring_hash(key));
    }
    scanned.sort_by(|a, b| a.1.cmp(&b.1));
    let mut expected = keys.clone();
    expected.sort();
    let got: Vec<Bytes> = scanned.iter().map(|(_, k, _)| k.clone()).collect();
    assert_eq!(got, expected);
    for (_, key, obj) in &scanned {
        let i = keys.iter().position(|k| k == key).expect("known key");
        assert_eq!(*obj, object(&format!("v{i}")));
    }

    // Updates see the current record of long keys too.
    let long = keys[6].clone();
    let seen = update(store, long.clone(), |cur| (Write::Keep, cur))
        .await
        .expect("update");
    assert_eq!(seen, Some(object("v6")));

    for key in &keys {
        update(store, key.clone(), |_| (Write::Remove, ()))
            .await
            .expect("remove");
        assert_eq!(store.get(key).expect("get"), None);
    }
    assert!(store.scan(0, 1_000).await.expect("scan").is_empty());
    assert_eq!(store.decode_errors(), 0);
}

/// The Merkle update queue: silent until enabled, then every committed put
/// and remove in commit order with the digest of the record as stored, and
/// a rescan request after a clear.
async fn change_feed<S: ReplicaStore>(store: S) {
    put(&store, "before", "0").await;
    assert!(
        store.changes().take().items.is_empty(),
        "records nothing until enabled"
    );
    store.changes().enable();

    put(&store, "a", "1").await;
    put(&store, "a", "2").await;
    put(&store, "b", "3").await;
    update(&store, Bytes::from("b"), |_| (Write::Remove, ()))
        .await
        .expect("remove");
    update(&store, Bytes::from("a"), |_| (Write::Keep, ()))
        .await
        .expect("keep");
    let changes = store.changes().take();
    assert!(!changes.rescan);
    let a = Bytes::from("a");
    let b = Bytes::from("b");
    let digest = |key: &Bytes, value: &str| record_digest(&encode_record(key, &object(value)));
    assert_eq!(
        changes.items,
        vec![
            (a.clone(), Some(digest(&a, "1"))),
            (a.clone(), Some(digest(&a, "2"))),
            (b.clone(), Some(digest(&b, "3"))),
            (b.clone(), None),
        ]
    );
    // The digest is the one a reader computes from the stored object.
    let stored = store.get(b"a").expect("get").expect("present");
    assert_eq!(record_digest(&encode_record(&a, &stored)), digest(&a, "2"));
    assert!(store.changes().take().items.is_empty(), "take drains");

    put(&store, "c", "4").await;
    store.clear().await.expect("clear");
    let changes = store.changes().take();
    assert!(changes.rescan, "a clear asks for a rescan");
    assert!(changes.items.is_empty());
    put(&store, "d", "5").await;
    let changes = store.changes().take();
    assert!(!changes.rescan);
    assert_eq!(changes.items.len(), 1);
}

#[tokio::test]
async fn memory_store_change_feed() {
    change_feed(MemoryStore::new()).await;
}

#[tokio::test]
async fn fjall_store_change_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    change_feed(FjallStore::open(dir.path(), FsyncPolicy::Always).expect("open")).await;
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(MemoryStore::new()).await;
    long_keys(&MemoryStore::new()).await;
}

#[tokio::test]
async fn fjall_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance(FjallStore::open(dir.path(), FsyncPolicy::Always).expect("open")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    long_keys(&FjallStore::open(dir.path(), FsyncPolicy::Everysec).expect("open")).await;
}

/// Raw records as an older version or a digest collision would leave them:
/// a FORMAT_V1 record, and a long key's record holding another whole key.
/// (record key, record value) pairs written straight into a store.
type RawRecords = Vec<(Vec<u8>, Vec<u8>)>;

fn raw_records() -> (Bytes, Bytes, RawRecords) {
    let long = Bytes::from(vec![b'L'; LONG_KEY + 10]);
    let mut impostor = long.to_vec();
    impostor[LONG_KEY + 5] = b'M';
    let impostor = Bytes::from(impostor);
    let records = vec![
        (record_key(b"old"), encode_object(&object("from v1"))),
        // Stored under `long`'s record key, but for `impostor`.
        (
            record_key(&long),
            encode_record(&impostor, &object("other")),
        ),
    ];
    (long, impostor, records)
}

async fn old_and_colliding_records<S: ReplicaStore>(store: &S, long: Bytes, impostor: Bytes) {
    // Records written before FORMAT_V2 still read, scan and update.
    assert_eq!(store.get(b"old").expect("get"), Some(object("from v1")));
    let page = store.scan(0, 10).await.expect("scan");
    assert_eq!(page.len(), 1, "the colliding record is not returned");
    assert_eq!(&page[0].1[..], b"old");
    // A collision reads as absent for both keys and is never overwritten.
    assert_eq!(store.get(&long).expect("get"), None);
    assert_eq!(store.get(&impostor).expect("get"), None);
    let obj = object("clobber");
    let result = update(store, long.clone(), move |_| (Write::Put(obj), ())).await;
    assert!(
        result.is_err(),
        "writing over another key's record must fail"
    );
    assert_eq!(store.decode_errors(), 1, "the scan counted the collision");
    let obj = object("v2 now");
    update(store, Bytes::from("old"), move |cur| {
        assert_eq!(cur, Some(object("from v1")));
        (Write::Put(obj), ())
    })
    .await
    .expect("rewrite");
    assert_eq!(store.get(b"old").expect("get"), Some(object("v2 now")));
}

#[tokio::test]
async fn old_records_decode_and_collisions_read_as_absent() {
    let (long, impostor, records) = raw_records();
    let mem = MemoryStore::new();
    for (rk, raw) in &records {
        mem.put_raw_record(rk.clone(), raw.clone());
    }
    old_and_colliding_records(&mem, long.clone(), impostor.clone()).await;

    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = fjall::Database::builder(dir.path().join("fjall"))
            .open()
            .expect("open fjall");
        let data = db
            .keyspace("data", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        for (rk, raw) in records {
            data.insert(rk, raw).expect("insert");
        }
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let store = FjallStore::open(dir.path(), FsyncPolicy::Everysec).expect("open");
    old_and_colliding_records(&store, long, impostor).await;
}

#[tokio::test]
async fn fjall_store_recovers_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = FjallStore::open(dir.path(), FsyncPolicy::Everysec).expect("open");
        for i in 0..100 {
            put(&store, &format!("k{i}"), &format!("v{i}")).await;
        }
        store.sync().await.expect("sync");
    }
    // The writer thread holds the database until its channel closes.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let store = FjallStore::open(dir.path(), FsyncPolicy::Everysec).expect("reopen");
    for i in 0..100 {
        assert_eq!(
            store.get(format!("k{i}").as_bytes()).expect("get"),
            Some(object(&format!("v{i}")))
        );
    }
}

#[tokio::test]
async fn corrupt_records_are_counted_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = fjall::Database::builder(dir.path().join("fjall"))
            .open()
            .expect("open fjall");
        let data = db
            .keyspace("data", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        data.insert(record_key(b"bad"), vec![1u8, 0xff, 0xff, 0xff, 0xff])
            .expect("insert");
        data.insert(record_key(b"worse"), Vec::<u8>::new())
            .expect("insert");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let store = FjallStore::open(dir.path(), FsyncPolicy::Everysec).expect("open");
    assert_eq!(store.get(b"bad").expect("get"), None);
    assert_eq!(store.decode_errors(), 1);
    assert!(store.scan(0, 10).await.expect("scan").is_empty());
    assert_eq!(store.decode_errors(), 3);
    // The key can be written again.
    put(&store, "bad", "fixed").await;
    assert_eq!(store.get(b"bad").expect("get"), Some(object("fixed")));

    let mem = MemoryStore::new();
    mem.put_raw(b"x", vec![7, 7, 7]);
    assert_eq!(mem.get(b"x").expect("get"), None);
    assert_eq!(mem.decode_errors(), 1);
}

/// Queues an update that holds the fjall writer until the returned sender
/// is used, and waits until the writer is inside it.
async fn hold_writer(
    store: &FjallStore,
) -> (dynkv::store::Committed<()>, std::sync::mpsc::Sender<()>) {
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let gate = queue(store, Bytes::from("gate"), move |_| {
        let _ = started_tx.send(());
        let _ = release_rx.recv();
        (Write::Keep, ())
    })
    .await;
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("the writer took the gate");
    (gate, release_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjall_quick_updates_commit_at_once_but_never_overtake_queued_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FjallStore::open(dir.path(), FsyncPolicy::Everysec).expect("open"));

    // With nothing queued, a quick update is committed by the time it is queued.
    let quick = queue_quick(&*store, Bytes::from("k"), |_| {
        (Write::Put(object("alone")), "alone")
    })
    .await;
    assert_eq!(store.get(b"k").expect("get"), Some(object("alone")));
    assert_eq!(quick.await.expect("commit"), "alone");

    // Hold the writer inside one update: what is queued behind it stays queued.
    let (gate, release_tx) = hold_writer(&store).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let queued = {
        let order = order.clone();
        queue(&*store, Bytes::from("k"), move |_| {
            order.lock().push("queued");
            (Write::Put(object("queued")), ())
        })
        .await
    };
    // Queued after it by the same caller: it must wait its turn, not run
    // on this thread while the writer is busy.
    let quick = {
        let order = order.clone();
        queue_quick(&*store, Bytes::from("k"), move |_| {
            order.lock().push("quick");
            (Write::Put(object("quick")), ())
        })
        .await
    };
    assert!(order.lock().is_empty());
    assert_eq!(store.get(b"k").expect("get"), Some(object("alone")));

    release_tx.send(()).expect("release the writer");
    gate.await.expect("gate commit");
    queued.await.expect("queued commit");
    quick.await.expect("quick commit");
    assert_eq!(*order.lock(), vec!["queued", "quick"]);
    assert_eq!(store.get(b"k").expect("get"), Some(object("quick")));
    assert_eq!(store.queue_depth(), 0);

    // Once the queue has drained, quick updates commit at once again.
    let quick = queue_quick(&*store, Bytes::from("k"), |_| {
        (Write::Put(object("again")), ())
    })
    .await;
    assert_eq!(store.get(b"k").expect("get"), Some(object("again")));
    quick.await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fjall_writer_queue_is_bounded_and_keeps_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FjallStore::open(dir.path(), FsyncPolicy::No).expect("open"));

    // Hold the writer inside one update, so nothing leaves the queue.
    let (gate, release_tx) = hold_writer(&store).await;

    // A full queue's worth is accepted without waiting for any commit.
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut commits = Vec::new();
    for i in 0..WRITER_QUEUE {
        let order = order.clone();
        let obj = object(&i.to_string());
        let key = Bytes::from(format!("k{}", i % 100));
        commits.push(
            queue(&*store, key, move |_| {
                order.lock().push(i);
                (Write::Put(obj), i)
            })
            .await,
        );
    }
    assert_eq!(store.queue_depth(), WRITER_QUEUE as u64);

    // One more producer has to wait for room.
    let extra = tokio::spawn({
        let store = store.clone();
        let order = order.clone();
        async move {
            update(&*store, Bytes::from("last"), move |_| {
                order.lock().push(WRITER_QUEUE);
                (Write::Put(object("last")), ())
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!extra.is_finished(), "a producer past the bound must wait");
    assert!(order.lock().is_empty());

    release_tx.send(()).expect("release the writer");
    gate.await.expect("gate commit");
    for (i, commit) in commits.into_iter().enumerate() {
        assert_eq!(commit.await.expect("commit"), i);
    }
    extra.await.expect("join").expect("the waiting write");
    // Nothing lost, and applied in the order queued.
    assert_eq!(*order.lock(), (0..=WRITER_QUEUE).collect::<Vec<_>>());
    for i in WRITER_QUEUE - 100..WRITER_QUEUE {
        assert_eq!(
            store.get(format!("k{}", i % 100).as_bytes()).expect("get"),
            Some(object(&i.to_string()))
        );
    }
    assert_eq!(store.get(b"last").expect("get"), Some(object("last")));
    assert_eq!(store.queue_depth(), 0);
}

#[tokio::test]
async fn memory_store_crash_loses_exactly_the_unsynced_writes() {
    for fsync in [FsyncPolicy::Everysec, FsyncPolicy::No] {
        let store = MemoryStore::new_with(fsync);
        put(&store, "a", "1").await;
        put(&store, "b", "2").await;
        store.sync().await.expect("sync");
        put(&store, "a", "changed").await;
        put(&store, "c", "3").await;
        update(&store, Bytes::from("b"), |_| (Write::Remove, ()))
            .await
            .expect("remove");
        store.crash();
        assert_eq!(store.get(b"a").expect("get"), Some(object("1")));
        assert_eq!(store.get(b"b").expect("get"), Some(object("2")));
        assert_eq!(store.get(b"c").expect("get"), None);
        assert_eq!(store.scan(0, 10).await.expect("scan").len(), 2);

        // A flush after the last sync is lost too; one before it is kept.
        store.clear().await.expect("clear");
        store.crash();
        assert_eq!(store.scan(0, 10).await.expect("scan").len(), 2);
        store.clear().await.expect("clear");
        store.sync().await.expect("sync");
        store.crash();
        assert!(store.scan(0, 10).await.expect("scan").is_empty());
    }

    for store in [
        MemoryStore::new_with(FsyncPolicy::Always),
        MemoryStore::new(),
    ] {
        put(&store, "a", "1").await;
        put(&store, "a", "2").await;
        put(&store, "b", "1").await;
        update(&store, Bytes::from("b"), |_| (Write::Remove, ()))
            .await
            .expect("remove");
        store.crash();
        assert_eq!(store.get(b"a").expect("get"), Some(object("2")));
        assert_eq!(store.get(b"b").expect("get"), None);
    }
}
