//! One suite run against both replica stores (fjall on disk, memory), plus
//! fjall-only recovery and corrupt-record tests on real files.

use bytes::Bytes;
use dynkv::core::{NodeId, Object, Payload, VersionVector, ring_hash};
use dynkv::store::codec::record_key;
use dynkv::store::fjall_store::FjallStore;
use dynkv::store::memory::MemoryStore;
use dynkv::store::{FsyncPolicy, ReplicaStore, Write, update};

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
    let all = store.scan(0, 100).expect("scan");
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].0 <= w[1].0));
    for (hash, key, _) in &all {
        assert_eq!(*hash, ring_hash(key));
    }
    let from_second = store.scan(all[1].0, 100).expect("scan");
    assert_eq!(from_second.len(), 2);
    assert_eq!(store.scan(0, 1).expect("scan").len(), 1);

    update(&store, Bytes::from("b"), |_| (Write::Remove, ()))
        .await
        .expect("remove");
    assert_eq!(store.get(b"b").expect("get"), None);

    store.clear().await.expect("clear");
    assert!(store.scan(0, 100).expect("scan").is_empty());
    store.sync().expect("sync");
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(MemoryStore::new()).await;
}

#[tokio::test]
async fn fjall_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance(FjallStore::open(dir.path(), FsyncPolicy::Always).expect("open")).await;
}

#[tokio::test]
async fn fjall_store_recovers_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = FjallStore::open(dir.path(), FsyncPolicy::Everysec).expect("open");
        for i in 0..100 {
            put(&store, &format!("k{i}"), &format!("v{i}")).await;
        }
        store.sync().expect("sync");
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
    assert!(store.scan(0, 10).expect("scan").is_empty());
    assert_eq!(store.decode_errors(), 3);
    // The key can be written again.
    put(&store, "bad", "fixed").await;
    assert_eq!(store.get(b"bad").expect("get"), Some(object("fixed")));

    let mem = MemoryStore::new();
    mem.put_raw(b"x", vec![7, 7, 7]);
    assert_eq!(mem.get(b"x").expect("get"), None);
    assert_eq!(mem.decode_errors(), 1);
}
