//! What a node runs on: its storage, its network, its disk for small
//! metadata and its clock. Production uses fjall, TCP and the system clock
//! ([`Production`]); the simulation plugs in memory stores, a seeded
//! in-process network and skewed simulated clocks, and runs the very same
//! [`super::cluster::ClusterKv`], workers and boot code.

use crate::core::{Request, Response};
use crate::net::Transport;
use crate::store::ReplicaStore;
use crate::store::hints::Hints;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The parts a node is generic over.
pub trait NodeEnv: Send + Sync + 'static {
    /// Replica storage.
    type Store: ReplicaStore;
    /// Hinted-handoff storage.
    type Hints: Hints;
    /// Node-to-node calls.
    type Transport: Transport<Request, Response>;
    /// Small durable metadata (identity, dot lease, cluster state).
    type Meta: MetaStore;

    /// Runs blocking work (file writes) off the async workers in production;
    /// inline in the simulation, where no other thread may run.
    fn offload<T, F>(f: F) -> impl Future<Output = T> + Send
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static;
}

/// fjall + TCP + files in the data dir.
pub struct Production;

impl NodeEnv for Production {
    type Store = crate::store::fjall_store::FjallStore;
    type Hints = crate::store::fjall_hints::FjallHints;
    type Transport = crate::net::RpcClient<Request, Response>;
    type Meta = DirMeta;

    async fn offload<T, F>(f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match tokio::task::spawn_blocking(f).await {
            Ok(v) => v,
            // The closure panicked: that is a bug, surface it as one.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// The physical clock a node reads (ms since the Unix epoch).
pub trait Clock: Send + Sync + 'static {
    /// Physical time now.
    fn physical_ms(&self) -> u64;
}

/// The system clock, optionally shifted. The shift exists only so tests can
/// start a real process whose clock is wrong (`DYNKV_TEST_CLOCK_SKEW_MS`).
pub struct SystemClock {
    skew_ms: i64,
}

impl SystemClock {
    /// The system clock shifted by `skew_ms`.
    pub fn new(skew_ms: i64) -> Self {
        Self { skew_ms }
    }
}

impl Clock for SystemClock {
    fn physical_ms(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        now.saturating_add_signed(self.skew_ms)
    }
}

/// Small named records that must survive a crash: written rarely, read at
/// start. A write returns only once the record is durable.
pub trait MetaStore: Send + Sync + 'static {
    /// The record `name`, if written before.
    fn read(&self, name: &str) -> Option<Vec<u8>>;
    /// Replaces `name` durably (blocking: call through [`NodeEnv::offload`]
    /// from async code).
    fn write(&self, name: &str, value: &[u8]) -> std::io::Result<()>;
}

/// Records as files in the data dir: write a temporary file, fsync it,
/// rename it over the old one, fsync the directory, so a crash leaves the
/// old or the new record and never a torn one.
pub struct DirMeta {
    dir: PathBuf,
}

impl DirMeta {
    /// Records in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

impl MetaStore for DirMeta {
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(name)).ok()
    }

    fn write(&self, name: &str, value: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(value)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

/// Records in memory (simulation: the "disk" survives crashes of the node
/// process, and is lost only when the simulation replaces it).
#[derive(Default)]
pub struct MemMeta {
    records: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MetaStore for MemMeta {
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        self.records.lock().get(name).cloned()
    }

    fn write(&self, name: &str, value: &[u8]) -> std::io::Result<()> {
        self.records.lock().insert(name.to_owned(), value.to_vec());
        Ok(())
    }
}
