//! SELECT's databases: each is a namespace of keys in the one replicated
//! keyspace. [`InDb`] is the store as a connection in database `db` sees
//! it, so every command works in every database without knowing of them.

use crate::core::NodeId;
use crate::core::{Object, Payload, VersionVector, db_key, split_db_key, stored_as_is};
use crate::kv::{
    AdminCommand, AdminValue, Change, InfoFields, Kv, KvError, LiveValue, QueuedWrite, ReadOptions,
    ScanPage, WriteOptions,
};
use bytes::Bytes;

/// The store seen from database `db`.
pub struct InDb<'a, K> {
    kv: &'a K,
    db: u8,
}

impl<'a, K: Kv> InDb<'a, K> {
    /// `kv` as database `db` sees it.
    pub fn new(kv: &'a K, db: u8) -> Self {
        Self { kv, db }
    }

    /// The whole store (FLUSHALL, MOVE, COPY ... DB).
    pub fn all(&self) -> &'a K {
        self.kv
    }

    /// The selected database.
    pub fn db(&self) -> u8 {
        self.db
    }

    fn stored(&self, key: Bytes) -> Bytes {
        if stored_as_is(self.db, &key) {
            key
        } else {
            Bytes::from(db_key(self.db, &key))
        }
    }
}

impl<K: Kv> Kv for InDb<'_, K> {
    async fn get(&self, key: Bytes, opts: ReadOptions) -> Result<Object, KvError> {
        self.kv.get(self.stored(key), opts).await
    }

    async fn put(
        &self,
        key: Bytes,
        context: VersionVector,
        payload: Payload,
        opts: WriteOptions,
    ) -> Result<(), KvError> {
        self.kv.put(self.stored(key), context, payload, opts).await
    }

    async fn modify<T, F>(&self, key: Bytes, f: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(Option<LiveValue>, u64) -> (Change, T) + Send + 'static,
    {
        self.kv.modify(self.stored(key), f).await
    }

    async fn scan(&self, cursor: u64, count: usize) -> Result<ScanPage, KvError> {
        let page = self.kv.scan(cursor, count).await?;
        let keys = page
            .keys
            .into_iter()
            .filter_map(|stored| {
                let (db, key) = split_db_key(&stored);
                (db == self.db).then(|| {
                    if key.len() == stored.len() {
                        stored.clone()
                    } else {
                        stored.slice(stored.len() - key.len()..)
                    }
                })
            })
            .collect();
        Ok(ScanPage {
            next_cursor: page.next_cursor,
            keys,
        })
    }

    async fn flush_all(&self) -> Result<(), KvError> {
        self.kv.flush_all().await
    }

    async fn flush_db(&self, db: u8) -> Result<(), KvError> {
        self.kv.flush_db(db).await
    }

    fn key_count(&self) -> u64 {
        self.kv.key_count_in(self.db)
    }

    fn expiring_key_count(&self) -> u64 {
        self.kv.expiring_key_count_in(self.db)
    }

    fn key_count_in(&self, db: u8) -> u64 {
        self.kv.key_count_in(db)
    }

    fn expiring_key_count_in(&self, db: u8) -> u64 {
        self.kv.expiring_key_count_in(db)
    }

    fn expired_key_count(&self) -> u64 {
        self.kv.expired_key_count()
    }

    fn now_ms(&self) -> u64 {
        self.kv.now_ms()
    }

    fn node_id(&self) -> &NodeId {
        self.kv.node_id()
    }

    fn replica_count(&self) -> usize {
        self.kv.replica_count()
    }

    fn info_fields(&self) -> InfoFields {
        self.kv.info_fields()
    }

    async fn sync(&self) -> Result<(), KvError> {
        self.kv.sync().await
    }

    async fn overwrite(&self, key: Bytes, change: Change) -> Result<(), KvError> {
        self.kv.overwrite(self.stored(key), change).await
    }

    async fn overwrite_queued(
        &self,
        key: Bytes,
        change: Change,
        more_follow: bool,
    ) -> Option<QueuedWrite> {
        self.kv
            .overwrite_queued(self.stored(key), change, more_follow)
            .await
    }

    fn serialising_node(&self, key: &[u8]) -> Option<NodeId> {
        if stored_as_is(self.db, key) {
            self.kv.serialising_node(key)
        } else {
            self.kv.serialising_node(&db_key(self.db, key))
        }
    }

    async fn forward_command(&self, node: NodeId, payload: Bytes) -> Result<Bytes, KvError> {
        self.kv.forward_command(node, payload).await
    }

    fn live_peers(&self) -> Vec<NodeId> {
        self.kv.live_peers()
    }

    fn cluster_view(&self) -> Option<crate::kv::ClusterView> {
        self.kv.cluster_view()
    }

    fn moved_to(&self, slot: u16) -> Option<String> {
        self.kv.moved_to(slot)
    }

    async fn admin(&self, cmd: AdminCommand) -> Result<AdminValue, KvError> {
        let cmd = match cmd {
            AdminCommand::LocalGet(key) => AdminCommand::LocalGet(self.stored(key)),
            other => other,
        };
        self.kv.admin(cmd).await
    }
}
