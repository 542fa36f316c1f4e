//! What every memcached connection of a node shares: the limits, the
//! password, and the counters `stats` reports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counters of the `stats` command, named as memcached names them.
#[derive(Default, Debug)]
pub struct Stats {
    /// get/gets/gat/gats keys asked for.
    pub cmd_get: AtomicU64,
    /// Storage commands.
    pub cmd_set: AtomicU64,
    /// flush_all commands.
    pub cmd_flush: AtomicU64,
    /// touch and gat keys.
    pub cmd_touch: AtomicU64,
    /// Keys found by get.
    pub get_hits: AtomicU64,
    /// Keys not found by get.
    pub get_misses: AtomicU64,
    /// delete that removed something.
    pub delete_hits: AtomicU64,
    /// delete of an absent key.
    pub delete_misses: AtomicU64,
    /// incr of a present key.
    pub incr_hits: AtomicU64,
    /// incr of an absent key.
    pub incr_misses: AtomicU64,
    /// decr of a present key.
    pub decr_hits: AtomicU64,
    /// decr of an absent key.
    pub decr_misses: AtomicU64,
    /// cas that stored.
    pub cas_hits: AtomicU64,
    /// cas of an absent key.
    pub cas_misses: AtomicU64,
    /// cas refused because the key changed.
    pub cas_badval: AtomicU64,
    /// touch of a present key.
    pub touch_hits: AtomicU64,
    /// touch of an absent key.
    pub touch_misses: AtomicU64,
    /// Values refused for the item size limit.
    pub store_too_large: AtomicU64,
    /// Authentication attempts.
    pub auth_cmds: AtomicU64,
    /// Failed authentication attempts.
    pub auth_errors: AtomicU64,
    /// Bytes sent to clients.
    pub bytes_written: AtomicU64,
    /// Connections open now.
    pub curr_connections: AtomicU64,
    /// Connections accepted since start.
    pub total_connections: AtomicU64,
}

impl Stats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to `counter`.
    pub fn bump_by(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counters as `stats` lists them.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("curr_connections", get(&self.curr_connections)),
            ("total_connections", get(&self.total_connections)),
            ("cmd_get", get(&self.cmd_get)),
            ("cmd_set", get(&self.cmd_set)),
            ("cmd_flush", get(&self.cmd_flush)),
            ("cmd_touch", get(&self.cmd_touch)),
            ("get_hits", get(&self.get_hits)),
            ("get_misses", get(&self.get_misses)),
            ("delete_misses", get(&self.delete_misses)),
            ("delete_hits", get(&self.delete_hits)),
            ("incr_misses", get(&self.incr_misses)),
            ("incr_hits", get(&self.incr_hits)),
            ("decr_misses", get(&self.decr_misses)),
            ("decr_hits", get(&self.decr_hits)),
            ("cas_misses", get(&self.cas_misses)),
            ("cas_hits", get(&self.cas_hits)),
            ("cas_badval", get(&self.cas_badval)),
            ("touch_hits", get(&self.touch_hits)),
            ("touch_misses", get(&self.touch_misses)),
            ("store_too_large", get(&self.store_too_large)),
            ("auth_cmds", get(&self.auth_cmds)),
            ("auth_errors", get(&self.auth_errors)),
            ("bytes_written", get(&self.bytes_written)),
        ]
    }
}

/// Decides whether a client connecting from an address may stay (the
/// node's protected mode, shared with the RESP port).
pub type Admission = Box<dyn Fn(std::net::SocketAddr) -> bool + Send + Sync>;

/// The memcached front end's shared state.
pub struct MemcacheState {
    /// Largest value a client may store.
    pub max_item: usize,
    /// When set, connections must authenticate first (memcached's `-Y`
    /// text-protocol authentication) with this password.
    pub password: Option<String>,
    /// The port clients connect to (0 when off: the node still runs
    /// memcached commands other nodes hand it).
    pub port: u16,
    /// The `stats` counters.
    pub stats: Stats,
    /// Connections at most (shared limit with nothing else).
    pub max_connections: u64,
    admit: Admission,
    started: Instant,
}

impl MemcacheState {
    /// State for a front end refusing values over `max_item` bytes.
    pub fn new(max_item: usize, password: Option<String>, port: u16, max_connections: u64) -> Self {
        Self {
            max_item,
            password,
            port,
            stats: Stats::default(),
            max_connections,
            admit: Box::new(|_| true),
            started: Instant::now(),
        }
    }

    /// The same state, admitting only the clients `admit` accepts.
    pub fn with_admission(mut self, admit: Admission) -> Self {
        self.admit = admit;
        self
    }

    /// Whether a client from `peer` may stay connected.
    pub fn admits(&self, peer: std::net::SocketAddr) -> bool {
        (self.admit)(peer)
    }

    /// Seconds since the node started.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}
