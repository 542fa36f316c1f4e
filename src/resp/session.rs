//! Per-connection state ([`Session`]) and what all connections share
//! ([`ServerState`]: settings, client registry, statistics).

use dashmap::DashMap;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use super::auth_limit::AuthLimiter;
use crate::config::{
    DEFAULT_PROTO_MAX_BULK_LEN, MAX_PROTO_MAX_BULK_LEN, MIN_PROTO_MAX_BULK_LEN, TlsSettings,
};

fn clamp_bulk_len(bytes: usize) -> usize {
    bytes.clamp(MIN_PROTO_MAX_BULK_LEN, MAX_PROTO_MAX_BULK_LEN)
}

/// One client connection's state.
#[derive(Debug)]
pub struct Session {
    /// CLIENT ID.
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub local_addr: SocketAddr,
    /// Replies in RESP3 (after HELLO 3).
    pub resp3: bool,
    /// False until AUTH when `--requirepass` is set.
    pub authenticated: bool,
    /// CLIENT SETNAME.
    pub name: Option<String>,
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Option<String>,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Option<String>,
    /// Set by QUIT: close after this reply.
    pub quit: bool,
    /// Connection start.
    pub created: Instant,
    /// Last command name, for CLIENT LIST.
    pub last_command: &'static str,
    /// When this connection last refreshed its CLIENT LIST line.
    pub listed_at: Instant,
    /// Set by MONITOR: the connection streams commands from now on.
    pub monitor: bool,
    /// SELECT's database.
    pub db: u8,
    /// Between MULTI and EXEC / DISCARD: the commands queued so far.
    pub multi: Option<super::cmd::transactions::Queued>,
    /// Keys WATCHed, with the version each had when watched.
    pub watched: Vec<super::cmd::transactions::Watched>,
    /// A command another node forwarded here to be serialised: it runs
    /// here whatever this node thinks of the key's owners.
    pub forwarded: bool,
    /// Running inside EXEC or a script, which holds the node's atomic gate
    /// already: its commands must not take it again.
    pub holds_gate: bool,
    /// After (P|S)SUBSCRIBE: the connection's subscriptions and inbox.
    pub subscriber: Option<super::pubsub::Subscriber>,
    /// Fetched the slot map (CLUSTER SLOTS, SHARDS or NODES): a Redis
    /// Cluster client, told `MOVED` for keys this node does not serve.
    pub cluster_aware: bool,
    /// READONLY was sent (reads are served here either way).
    pub readonly: bool,
}

impl Session {
    /// A new connection.
    pub fn new(id: u64, addr: SocketAddr, local_addr: SocketAddr, needs_auth: bool) -> Self {
        Self {
            id,
            addr,
            local_addr,
            resp3: false,
            authenticated: !needs_auth,
            name: None,
            lib_name: None,
            lib_ver: None,
            quit: false,
            created: Instant::now(),
            last_command: "NULL",
            listed_at: Instant::now(),
            monitor: false,
            db: 0,
            multi: None,
            watched: Vec::new(),
            forwarded: false,
            holds_gate: false,
            subscriber: None,
            cluster_aware: false,
            readonly: false,
        }
    }

    /// The session a command forwarded by another node runs in (that node
    /// checked the client's password).
    pub fn forwarded() -> Self {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut session = Session::new(0, nowhere, nowhere, false);
        session.forwarded = true;
        session
    }

    /// The CLIENT LIST / CLIENT INFO line for this connection.
    pub fn describe(&self) -> String {
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle=0 flags={} db={} sub=0 psub=0 ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.local_addr,
            self.name.as_deref().unwrap_or(""),
            self.created.elapsed().as_secs(),
            match (self.monitor, &self.multi) {
                (true, _) => "O",
                (false, Some(_)) => "x",
                (false, None) => "N",
            },
            self.db,
            self.multi.as_ref().map_or(-1, |q| q.len() as i64),
            self.last_command,
            if self.resp3 { 3 } else { 2 },
            self.lib_name.as_deref().unwrap_or(""),
            self.lib_ver.as_deref().unwrap_or(""),
        )
    }
}

/// What CLIENT KILL needs to know of a connection.
#[derive(Debug, Clone)]
pub struct ConnectionHandle {
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub local_addr: SocketAddr,
    /// Cancelled to close the connection.
    pub kill: CancellationToken,
}

/// A CLIENT PAUSE in force.
#[derive(Debug, Clone, Copy)]
pub struct Pause {
    /// When it ends by itself.
    pub until: Instant,
    /// `WRITE`: only commands that may write wait; `ALL`: every data command.
    pub writes_only: bool,
}

/// Counters for INFO stats (reset by CONFIG RESETSTAT).
#[derive(Debug)]
pub struct Stats {
    /// Prometheus handles, looked up once: registering on every command
    /// cost more than the command.
    commands_metric: metrics::Counter,
    errors_metric: metrics::Counter,
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused at `maxclients`.
    pub rejected_connections: AtomicU64,
    /// Commands run.
    pub commands_processed: AtomicU64,
    /// Error replies sent.
    pub error_replies: AtomicU64,
    /// Connections closed for protocol errors.
    pub protocol_errors: AtomicU64,
    /// Wrong passwords (Redis's `acl_access_denied_auth`).
    pub auth_failures: AtomicU64,
    /// AUTH attempts refused unchecked because their address guessed too
    /// often.
    pub auth_rate_limited: AtomicU64,
    /// Clients refused by protected mode.
    pub protected_mode_denied: AtomicU64,
    /// Clients closed for idling past `timeout`.
    pub idle_timeouts: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            commands_metric: metrics::counter!("dynkv_commands_total"),
            errors_metric: metrics::counter!("dynkv_error_replies_total"),
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            commands_processed: AtomicU64::new(0),
            error_replies: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            auth_rate_limited: AtomicU64::new(0),
            protected_mode_denied: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
        }
    }
}

impl Stats {
    /// Counts one command.
    pub fn record_command(&self) {
        self.commands_processed.fetch_add(1, Ordering::Relaxed);
        self.commands_metric.increment(1);
    }

    /// Counts one error reply.
    pub fn record_error(&self) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        self.errors_metric.increment(1);
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for c in [
            &self.connections_received,
            &self.rejected_connections,
            &self.commands_processed,
            &self.error_replies,
            &self.protocol_errors,
            &self.auth_failures,
            &self.auth_rate_limited,
            &self.protected_mode_denied,
            &self.idle_timeouts,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Everything connections share.
#[derive(Debug)]
pub struct ServerState {
    /// `--requirepass`.
    pub requirepass: Option<String>,
    /// `--maxclients`.
    pub maxclients: usize,
    /// Client port (INFO server).
    pub port: u16,
    /// Data directory (INFO / CONFIG GET dir).
    pub data_dir: String,
    /// `--fsync` as Redis's `appendfsync` spells it.
    pub appendfsync: String,
    /// Process start.
    pub started: Instant,
    /// Unix time of the last explicit SAVE (or start).
    pub last_save: AtomicU64,
    /// Connected clients' CLIENT LIST lines, refreshed after each command.
    pub clients: DashMap<u64, String>,
    /// Statistics.
    pub stats: Stats,
    /// Command stats, slow log, latency monitor, MONITOR clients, rates.
    pub obs: crate::obs::Obs,
    /// CONFIG SET values that have no effect on dynkv but that clients set
    /// and read back.
    pub config_overrides: Mutex<BTreeMap<String, String>>,
    /// Fired by SHUTDOWN; the node stops as on SIGTERM.
    pub shutdown: CancellationToken,
    next_client_id: AtomicU64,
    /// `proto-max-bulk-len`: read by every connection's request decoder
    /// before each request and by APPEND, so CONFIG SET applies at once.
    proto_max_bulk_len: AtomicUsize,
    /// Signs the context tokens DYN.GET hands out and checks the ones
    /// DYN.PUT / DYN.DEL get back (derived from the cluster secret).
    pub context_key: crate::core::DerivedKey,
    /// TLS settings, as CONFIG GET shows them (set once at startup).
    tls: std::sync::OnceLock<TlsSettings>,
    /// `protected-mode`, read at each accept.
    protected_mode: AtomicBool,
    /// `--read-repair`, as CONFIG GET shows it (set once at startup).
    read_repair: AtomicBool,
    /// `timeout` in seconds (0 = never); connections watch it, so CONFIG
    /// SET reaches clients that are already idle.
    timeout: tokio::sync::watch::Sender<u64>,
    /// Spaces out AUTH attempts after wrong passwords.
    pub auth_limiter: AuthLimiter,
    /// `--tombstone-grace` (CONFIG GET; set once at startup).
    pub tombstone_grace_secs: AtomicU64,
    /// `--databases`: SELECT accepts 0 to this - 1 (set once at startup).
    pub databases: AtomicUsize,
    /// Taken exclusively by an EXEC (from its WATCH check to its last
    /// command) and by a script (for its whole run), and shared by every
    /// data command: transactions and scripts are atomic with respect to
    /// everything else this node's clients run.
    pub atomic_gate: tokio::sync::RwLock<()>,
    /// SCRIPT LOAD / EVAL's scripts, by digest.
    pub scripts: super::script::ScriptCache,
    /// Every open client connection's addresses and kill switch (CLIENT
    /// KILL).
    pub connections: DashMap<u64, ConnectionHandle>,
    /// CLIENT PAUSE: until when, and whether only writes wait.
    pause: Mutex<Option<Pause>>,
    /// Whether `pause` may hold one: every command checks, so the common
    /// case is one load, not a lock shared by every connection.
    paused: AtomicBool,
    /// Pub/Sub subscriptions of this node's connections.
    pub pubsub: super::pubsub::PubSub,
    /// Clients blocked on list keys, and pushes to announce.
    pub key_waiters: super::blocking::KeyWaiters,
    /// Keyspace notifications: the classes on, and the queue to peers.
    pub notify: super::notify::Notifier,
    /// The script running now (SCRIPT KILL's target).
    pub running_scripts: super::cmd::scripting::RunningScripts,
}

impl ServerState {
    /// Shared state for a server with these settings.
    pub fn new(
        requirepass: Option<String>,
        maxclients: usize,
        port: u16,
        data_dir: String,
        appendfsync: String,
        now_secs: u64,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            requirepass,
            maxclients,
            port,
            data_dir,
            appendfsync,
            started: Instant::now(),
            last_save: AtomicU64::new(now_secs),
            clients: DashMap::new(),
            stats: Stats::default(),
            obs: crate::obs::Obs::new(super::cmd::COMMANDS.len()),
            config_overrides: Mutex::new(BTreeMap::new()),
            shutdown,
            next_client_id: AtomicU64::new(1),
            // The node sets the configured value right after building it.
            proto_max_bulk_len: AtomicUsize::new(DEFAULT_PROTO_MAX_BULK_LEN),
            // Tokens valid in this process only, until the node sets the
            // cluster's key with `with_context_key`.
            context_key: random_context_key(),
            tls: std::sync::OnceLock::new(),
            protected_mode: AtomicBool::new(true),
            read_repair: AtomicBool::new(true),
            timeout: tokio::sync::watch::Sender::new(0),
            auth_limiter: AuthLimiter::default(),
            tombstone_grace_secs: AtomicU64::new(crate::config::DEFAULT_TOMBSTONE_GRACE_SECS),
            databases: AtomicUsize::new(crate::config::DEFAULT_DATABASES),
            atomic_gate: tokio::sync::RwLock::new(()),
            scripts: Default::default(),
            running_scripts: Default::default(),
            pubsub: Default::default(),
            key_waiters: Default::default(),
            notify: Default::default(),
            connections: DashMap::new(),
            pause: Mutex::new(None),
            paused: AtomicBool::new(false),
        }
    }

    /// Starts (`Some`) or ends (`None`) a CLIENT PAUSE.
    pub fn set_pause(&self, pause: Option<Pause>) {
        let mut current = self.pause.lock();
        *current = pause;
        self.paused.store(pause.is_some(), Ordering::Release);
    }

    /// The CLIENT PAUSE in force, if any (one that has run out is ended).
    pub fn current_pause(&self) -> Option<Pause> {
        if !self.paused.load(Ordering::Acquire) {
            return None;
        }
        let mut current = self.pause.lock();
        if current.is_some_and(|p| Instant::now() >= p.until) {
            *current = None;
            self.paused.store(false, Ordering::Release);
        }
        *current
    }

    /// The same state, signing context tokens with `key` (the cluster
    /// secret's context key, so every node accepts every node's tokens).
    pub fn with_context_key(mut self, key: crate::core::DerivedKey) -> Self {
        self.context_key = key;
        self
    }

    /// How many databases SELECT can choose from.
    pub fn databases(&self) -> usize {
        self.databases.load(Ordering::Relaxed)
    }

    /// `protected-mode`.
    pub fn protected_mode(&self) -> bool {
        self.protected_mode.load(Ordering::Relaxed)
    }

    /// Records `--read-repair` for CONFIG GET.
    pub fn set_read_repair(&self, on: bool) {
        self.read_repair.store(on, Ordering::Relaxed);
    }

    /// `read-repair` for CONFIG GET.
    pub fn read_repair(&self) -> bool {
        self.read_repair.load(Ordering::Relaxed)
    }

    /// Changes `protected-mode` for connections accepted from now on.
    pub fn set_protected_mode(&self, on: bool) {
        self.protected_mode.store(on, Ordering::Relaxed);
    }

    /// `timeout` in seconds (0 = never).
    pub fn timeout_secs(&self) -> u64 {
        *self.timeout.borrow()
    }

    /// Changes `timeout` for every connection, idle ones included.
    pub fn set_timeout_secs(&self, secs: u64) {
        self.timeout.send_replace(secs);
    }

    /// Follows `timeout` changes.
    pub fn watch_timeout(&self) -> tokio::sync::watch::Receiver<u64> {
        self.timeout.subscribe()
    }

    /// The current `proto-max-bulk-len`: the longest bulk string a client
    /// may send, and the longest value APPEND may make.
    pub fn proto_max_bulk_len(&self) -> usize {
        self.proto_max_bulk_len.load(Ordering::Relaxed)
    }

    /// Changes `proto-max-bulk-len` for requests read from now on. Clamped
    /// to [`MIN_PROTO_MAX_BULK_LEN`]..=[`MAX_PROTO_MAX_BULK_LEN`]: callers
    /// validate user input ([`crate::config::parse_proto_max_bulk_len`]), and
    /// anything larger could not be replicated.
    pub fn set_proto_max_bulk_len(&self, bytes: usize) {
        self.proto_max_bulk_len
            .store(clamp_bulk_len(bytes), Ordering::Relaxed);
    }

    /// Records the TLS settings for CONFIG GET (the first call wins).
    pub fn set_tls(&self, tls: TlsSettings) {
        let _ = self.tls.set(tls);
    }

    /// The TLS settings (all off if never set).
    pub fn tls(&self) -> TlsSettings {
        self.tls.get().cloned().unwrap_or_default()
    }

    /// A fresh CLIENT ID.
    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A context key from a fresh random secret.
fn random_context_key() -> crate::core::DerivedKey {
    let secret = hex::encode(rand::random::<[u8; 32]>());
    crate::core::ClusterSecret::new(&secret)
        .map(|s| s.context_key())
        .unwrap_or_else(|_| unreachable!("64 hex digits are not empty"))
}
