//! Configuration: command-line flags, optionally layered over a TOML file
//! (`--config`). Flags given on the command line win over the file.
//!
//! Also the limits of `proto-max-bulk-len` and Redis's way of writing byte
//! sizes (`32mb`), shared by the flag, the file and `CONFIG SET`.

use crate::core::ClusterSecret;
use crate::store::FsyncPolicy;
use clap::Parser;
use serde::Deserialize;
use std::path::PathBuf;

/// Command-line flags (the names are a contract other tools rely on).
#[derive(Parser, Debug, Clone, Default)]
#[command(
    name = "dynkv",
    version,
    about = "Dynamo-style replicated key-value store that speaks RESP"
)]
pub struct Cli {
    /// TOML file with any of the options below (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    pub bind: Option<String>,
    /// Address peers and clients are told to reach this node at (default:
    /// `--bind`). Needed when `--bind` is a wildcard such as 0.0.0.0, e.g.
    /// in a container; a host name is resolved once, at startup.
    #[arg(long, value_name = "IP|HOST")]
    pub announce_ip: Option<String>,
    /// Client (RESP) port (0 turns plain TCP off, leaving `--tls-port`).
    #[arg(long)]
    pub port: Option<u16>,
    /// Node-to-node port (default: port + 10000).
    #[arg(long)]
    pub cluster_port: Option<u16>,
    /// Prometheus metrics HTTP port (default: port + 20000; 0 disables).
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// A second client port for Redis Cluster clients (default 0: off).
    /// The slot map (CLUSTER SLOTS / SHARDS / NODES) points clients at it,
    /// and a key this node does not serve is answered `-MOVED` there, so a
    /// cluster client follows joins and leaves.
    #[arg(long)]
    pub cluster_client_port: Option<u16>,
    /// Data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// This node's stable name (default: bind:port).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Ask an existing member (HOST:CLUSTERPORT) to admit this node.
    #[arg(long)]
    pub join: Option<String>,
    /// Replicas per key.
    #[arg(long)]
    pub n: Option<usize>,
    /// Read quorum.
    #[arg(long)]
    pub r: Option<usize>,
    /// Write quorum.
    #[arg(long)]
    pub w: Option<usize>,
    /// Password clients must AUTH with.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// memcached text/meta protocol port (default 11211, off when that is
    /// taken or `--requirepass` is set; 0 turns it off).
    #[arg(long)]
    pub memcache_port: Option<u16>,
    /// Largest value memcached clients may store (memcached's `-I`,
    /// default 1mb).
    #[arg(long, value_name = "BYTES", value_parser = parse_memcache_max_item_size)]
    pub memcache_max_item_size: Option<usize>,
    /// Secret every member of the cluster shares: cluster-port connections
    /// and context tokens are authenticated with it. Default: generated in
    /// the data dir at the first start of a node that founds a cluster.
    #[arg(long, value_name = "SECRET", conflicts_with = "cluster_secret_file")]
    pub cluster_secret: Option<String>,
    /// File holding the cluster secret (e.g. the `cluster.secret` the
    /// founding node generated).
    #[arg(long, value_name = "PATH")]
    pub cluster_secret_file: Option<PathBuf>,
    /// always | everysec | no
    #[arg(long, value_parser = parse_fsync)]
    pub fsync: Option<FsyncPolicy>,
    /// Maximum simultaneous clients.
    #[arg(long)]
    pub maxclients: Option<usize>,
    /// Threads serving client connections (default: half the cores, at
    /// least one; storage has its own writer thread).
    #[arg(long)]
    pub io_threads: Option<usize>,
    /// Largest clock offset from the cluster (ms) at which this node still
    /// coordinates writes.
    #[arg(long)]
    pub max_offset: Option<u64>,
    /// Hints kept per unreachable node; further keys are dropped (and left
    /// to read repair / anti-entropy).
    #[arg(long)]
    pub hint_max_per_target: Option<u64>,
    /// Seconds a hint is kept before it is dropped.
    #[arg(long)]
    pub hint_ttl: Option<u64>,
    /// Ring partitions (Q) of a cluster founded by this node: a power of two
    /// from 64 to 16384, each a run of 16384/Q Redis hash slots. Fixed when
    /// the cluster is created; a joining node takes the cluster's.
    #[arg(long, value_name = "Q", value_parser = parse_partitions)]
    pub partitions: Option<usize>,
    /// Seconds a tombstone (a delete, or an expired value) is kept at least
    /// before the cluster may purge it; it is purged only once every owner
    /// holds it (default 3600).
    #[arg(long, value_name = "SECONDS")]
    pub tombstone_grace: Option<u64>,
    /// Databases SELECT can choose from (0 to count - 1); default 16, at
    /// most 64.
    #[arg(long, value_name = "COUNT", value_parser = parse_databases)]
    pub databases: Option<usize>,
    /// Longest string a client may send or grow a value to, in bytes, with
    /// Redis's suffixes (`32mb`, `1gb`, `500k`); 1 MiB to 32 MiB.
    #[arg(long, value_name = "BYTES", value_parser = parse_proto_max_bulk_len)]
    pub proto_max_bulk_len: Option<usize>,
    /// Refuse clients from other hosts while no password is set: yes | no
    /// (Redis's protected mode; default yes).
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    pub protected_mode: Option<bool>,
    /// Close a client after this many idle seconds (0 = never, the default).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub timeout: Option<u64>,
    /// Keyspace notification classes, as Redis's `notify-keyspace-events`
    /// spells them (e.g. `KEA`, `Kg$xe`; default empty = off). CONFIG SET
    /// changes it on one node; set it on every node of a cluster.
    #[arg(long, value_name = "CLASSES", value_parser = parse_notify_keyspace_events)]
    pub notify_keyspace_events: Option<u32>,
    /// Repair stale replicas in the background after reads: on | off
    /// (default on; off leaves repair to anti-entropy alone).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub read_repair: Option<bool>,
    /// Seconds between anti-entropy rounds (Merkle-tree comparisons with
    /// replica peers); 0 = only a rebuilding node runs them. Default 10.
    #[arg(long, value_name = "SECONDS")]
    pub anti_entropy_interval: Option<u64>,
    /// TLS client port, alongside `--port` (0, the default, disables TLS;
    /// `--port 0` then leaves only TLS).
    #[arg(long)]
    pub tls_port: Option<u16>,
    /// PEM certificate chain the TLS port presents.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--tls-cert-file`.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificate(s) that client certificates must be signed by.
    #[arg(long, value_name = "FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// yes (default: clients must present a certificate signed by the CA) |
    /// optional (checked if presented) | no (not asked for).
    #[arg(long, value_name = "yes|no|optional", value_parser = parse_tls_auth_clients)]
    pub tls_auth_clients: Option<TlsAuthClients>,
}

/// Whether TLS clients must present a certificate (Redis's
/// `tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsAuthClients {
    /// A certificate signed by the CA is required (Redis's default).
    #[default]
    Yes,
    /// Not asked for.
    No,
    /// Checked against the CA if the client presents one.
    Optional,
}

impl TlsAuthClients {
    /// The word Redis uses (CONFIG GET).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsAuthClients::Yes => "yes",
            TlsAuthClients::No => "no",
            TlsAuthClients::Optional => "optional",
        }
    }
}

/// Parses `yes`, `no` or `optional`, in any case.
pub fn parse_tls_auth_clients(s: &str) -> Result<TlsAuthClients, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(TlsAuthClients::Yes),
        "no" => Ok(TlsAuthClients::No),
        "optional" => Ok(TlsAuthClients::Optional),
        other => Err(format!("'{other}' is not one of yes, no, optional")),
    }
}

/// TLS on the client port, resolved. `port == 0` means off; the other
/// fields are still kept so CONFIG GET shows what was given.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// TLS client port (0 = off).
    pub port: u16,
    /// Server certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// Server private key (PEM).
    pub key_file: Option<PathBuf>,
    /// CA that client certificates are checked against (PEM).
    pub ca_cert_file: Option<PathBuf>,
    /// Whether clients must present a certificate.
    pub auth_clients: TlsAuthClients,
}

impl TlsSettings {
    /// Checks the combination of settings (not the files: the node reads
    /// them when it builds the TLS acceptor).
    fn validate(&self, plain_port: u16) -> Result<(), ConfigError> {
        if self.port == 0 {
            return Ok(());
        }
        if self.port == plain_port {
            return Err(ConfigError::Invalid(format!(
                "--tls-port {} is also --port; use two ports (or --port 0 for TLS only)",
                self.port
            )));
        }
        if self.cert_file.is_none() || self.key_file.is_none() {
            return Err(ConfigError::Invalid(
                "--tls-port needs --tls-cert-file and --tls-key-file".into(),
            ));
        }
        if self.auth_clients != TlsAuthClients::No && self.ca_cert_file.is_none() {
            return Err(ConfigError::Invalid(format!(
                "--tls-auth-clients {} needs --tls-ca-cert-file to check client certificates \
                 (or set --tls-auth-clients no)",
                self.auth_clients.as_str()
            )));
        }
        Ok(())
    }
}

/// `--tombstone-grace` when not given, in seconds.
pub const DEFAULT_TOMBSTONE_GRACE_SECS: u64 = 3600;

/// Smallest `proto-max-bulk-len`, as in Redis.
pub const MIN_PROTO_MAX_BULK_LEN: usize = 1024 * 1024;

/// Largest `proto-max-bulk-len` (Redis allows more): the largest value the
/// node-to-node frames are sized for, so that nothing a client is told was
/// stored is too big to replicate, hint or repair.
pub const MAX_PROTO_MAX_BULK_LEN: usize = crate::net::MAX_VALUE_LEN;

/// Default `proto-max-bulk-len`: the most dynkv can carry between nodes
/// (Redis's 512 MB is far beyond that).
pub const DEFAULT_PROTO_MAX_BULK_LEN: usize = MAX_PROTO_MAX_BULK_LEN;

/// A byte size that cannot be used; the texts are Redis's CONFIG SET ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryValueError {
    /// Not a number with an optional `b`/`k`/`kb`/`m`/`mb`/`g`/`gb` suffix.
    #[error("argument must be a memory value")]
    NotAMemoryValue,
    /// A size outside the allowed range.
    #[error("argument must be between {min} and {max} inclusive")]
    OutOfRange {
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
}

/// Parses a byte size the way Redis's `memtoull` does: decimal digits and an
/// optional case-insensitive unit, `k`/`m`/`g` powers of 1000 and
/// `kb`/`mb`/`gb` powers of 1024. `None` for anything else (a sign, a
/// fraction, spaces, an unknown unit, overflow).
pub fn parse_memory(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    // Redis reads an empty number ("mb") as 0, which then fails the range
    // check rather than the format check; do the same.
    let number: u64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    number.checked_mul(multiplier)
}

/// Databases when `--databases` is not given (as in Redis).
pub const DEFAULT_DATABASES: usize = 16;

/// `--databases`: 1 to [`crate::core::MAX_DATABASES`].
pub fn parse_databases(text: &str) -> Result<usize, String> {
    let max = crate::core::MAX_DATABASES;
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be a number from 1 to {max}")),
    }
}

/// Parses and range-checks a `proto-max-bulk-len` value.
pub fn parse_proto_max_bulk_len(text: &str) -> Result<usize, MemoryValueError> {
    let bytes = parse_memory(text).ok_or(MemoryValueError::NotAMemoryValue)?;
    usize::try_from(bytes)
        .ok()
        .filter(|b| (MIN_PROTO_MAX_BULK_LEN..=MAX_PROTO_MAX_BULK_LEN).contains(b))
        .ok_or(MemoryValueError::OutOfRange {
            min: MIN_PROTO_MAX_BULK_LEN,
            max: MAX_PROTO_MAX_BULK_LEN,
        })
}

/// Where the memcached front end listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemcachePort {
    /// Not at all (`--memcache-port 0`, or the default under `--requirepass`).
    Off,
    /// The default port: if it is taken, the node runs without it.
    Default(u16),
    /// A port the operator named: failing to bind it stops the start.
    Explicit(u16),
}

/// memcached's default port.
pub const DEFAULT_MEMCACHE_PORT: u16 = 11211;
/// memcached's default item size limit (`-I 1m`).
pub const DEFAULT_MEMCACHE_MAX_ITEM_SIZE: usize = 1024 * 1024;
/// The item size limit's range: memcached's `-I` accepts 1k to 1g; the top
/// is held to the RESP bulk limit so both protocols store the same values.
const MEMCACHE_ITEM_SIZE_RANGE: (usize, usize) = (1024, MAX_PROTO_MAX_BULK_LEN);

/// Parses and range-checks `--memcache-max-item-size`.
pub fn parse_memcache_max_item_size(text: &str) -> Result<usize, MemoryValueError> {
    let bytes = parse_memory(text).ok_or(MemoryValueError::NotAMemoryValue)?;
    let (min, max) = MEMCACHE_ITEM_SIZE_RANGE;
    usize::try_from(bytes)
        .ok()
        .filter(|b| (min..=max).contains(b))
        .ok_or(MemoryValueError::OutOfRange { min, max })
}

/// A byte size in the TOML file: a plain integer or Redis's text form.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum MemoryValue {
    Bytes(i64),
    Text(String),
}

impl MemoryValue {
    fn text(&self) -> String {
        match self {
            MemoryValue::Bytes(n) => n.to_string(),
            MemoryValue::Text(t) => t.clone(),
        }
    }
}

/// `--partitions`: a power of two from 64 to 16384.
pub fn parse_partitions(text: &str) -> Result<usize, String> {
    let q: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if crate::core::valid_partition_count(q) {
        Ok(q)
    } else {
        Err(format!(
            "{q} is not a power of two from {} to {}",
            crate::core::MIN_PARTITIONS,
            crate::core::MAX_PARTITIONS
        ))
    }
}

/// Redis's yes/no booleans (flag, file and CONFIG SET).
pub fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

/// `on`/`off` booleans (`--read-repair`); yes/no are accepted too.
pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "yes" => Ok(true),
        "off" | "no" => Ok(false),
        _ => Err("argument must be 'on' or 'off'".into()),
    }
}

/// Parses `notify-keyspace-events` classes.
pub fn parse_notify_keyspace_events(s: &str) -> Result<u32, String> {
    crate::resp::notify::parse_classes(s).map_err(str::to_string)
}

/// Largest `timeout`, as in Redis.
pub const MAX_TIMEOUT_SECS: u64 = i32::MAX as u64;

/// Parses `timeout` seconds the way Redis's CONFIG SET does.
pub fn parse_timeout(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .ok()
        .filter(|t| *t <= MAX_TIMEOUT_SECS)
        .ok_or_else(|| format!("argument must be between 0 and {MAX_TIMEOUT_SECS} inclusive"))
}

fn parse_fsync(s: &str) -> Result<FsyncPolicy, String> {
    match s.to_ascii_lowercase().as_str() {
        "always" => Ok(FsyncPolicy::Always),
        "everysec" => Ok(FsyncPolicy::Everysec),
        "no" => Ok(FsyncPolicy::No),
        other => Err(format!("'{other}' is not one of always, everysec, no")),
    }
}

/// The same options as [`Cli`], as read from a TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    bind: Option<String>,
    announce_ip: Option<String>,
    port: Option<u16>,
    cluster_port: Option<u16>,
    metrics_port: Option<u16>,
    cluster_client_port: Option<u16>,
    data_dir: Option<PathBuf>,
    node_name: Option<String>,
    join: Option<String>,
    n: Option<usize>,
    r: Option<usize>,
    w: Option<usize>,
    requirepass: Option<String>,
    cluster_secret: Option<String>,
    cluster_secret_file: Option<PathBuf>,
    fsync: Option<FsyncPolicy>,
    maxclients: Option<usize>,
    io_threads: Option<usize>,
    max_offset: Option<u64>,
    hint_max_per_target: Option<u64>,
    hint_ttl: Option<u64>,
    partitions: Option<usize>,
    tombstone_grace: Option<u64>,
    databases: Option<usize>,
    proto_max_bulk_len: Option<MemoryValue>,
    memcache_port: Option<u16>,
    memcache_max_item_size: Option<MemoryValue>,
    tls_port: Option<u16>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_ca_cert_file: Option<PathBuf>,
    tls_auth_clients: Option<String>,
    protected_mode: Option<YesNo>,
    timeout: Option<u64>,
    notify_keyspace_events: Option<String>,
    read_repair: Option<YesNo>,
    anti_entropy_interval: Option<u64>,
}

/// A boolean in the TOML file: `true`/`false` or Redis's `"yes"`/`"no"`.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum YesNo {
    Bool(bool),
    Text(String),
}

/// Resolved configuration with defaults applied.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub bind: String,
    /// `--announce-ip`: what the node advertises instead of `bind`.
    pub announce_ip: Option<String>,
    /// Client port.
    pub port: u16,
    /// Cluster port.
    pub cluster_port: u16,
    /// Metrics port (0 = off).
    pub metrics_port: u16,
    /// Client port for Redis Cluster clients (0 = off).
    pub cluster_client_port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Node name.
    pub node_name: String,
    /// Seed to join.
    pub join: Option<String>,
    /// Replicas per key.
    pub n: usize,
    /// Read quorum.
    pub r: usize,
    /// Write quorum.
    pub w: usize,
    /// Client password.
    pub requirepass: Option<String>,
    /// The memcached port and whether it was asked for explicitly.
    pub memcache: MemcachePort,
    /// Largest value memcached clients may store, in bytes.
    pub memcache_max_item_size: usize,
    /// `--cluster-secret` / `--cluster-secret-file`, read; `None` when
    /// neither was given (the node then uses or generates the one in its
    /// data dir). Its `Debug` is redacted.
    pub cluster_secret: Option<ClusterSecret>,
    /// Durability.
    pub fsync: FsyncPolicy,
    /// Client limit.
    pub maxclients: usize,
    /// Runtime worker threads.
    pub io_threads: usize,
    /// `--max-offset` in ms.
    pub max_offset_ms: u64,
    /// `--hint-max-per-target`.
    pub hint_max_per_target: u64,
    /// `--hint-ttl` in seconds.
    pub hint_ttl_secs: u64,
    /// `--partitions`: Q of a cluster founded here.
    pub partitions: usize,
    /// `--tombstone-grace` in seconds.
    pub tombstone_grace_secs: u64,
    /// `--databases`.
    pub databases: usize,
    /// Longest bulk string a client may send, and longest value APPEND may
    /// make, in bytes (CONFIG SET can change it at run time).
    pub proto_max_bulk_len: usize,
    /// TLS on the client port.
    pub tls: TlsSettings,
    /// Redis's protected mode (CONFIG SET can change it at run time).
    pub protected_mode: bool,
    /// Idle seconds before a client is closed; 0 = never.
    pub timeout_secs: u64,
    /// Keyspace notification classes (see [`crate::resp::notify`]).
    pub notify_keyspace_events: u32,
    /// `--read-repair`: background repair after reads.
    pub read_repair: bool,
    /// `--anti-entropy-interval` in seconds (0 = only while rebuilding).
    pub anti_entropy_interval_secs: u64,
    /// Table files storage may keep open (set from the descriptor budget,
    /// see [`crate::fdlimit`]).
    pub storage_cached_files: usize,
}

/// Configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for dynkv.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Cause.
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// The host this node advertises to peers and clients: `--announce-ip`
    /// when given (an IP, or a name still to be resolved), else `--bind`.
    pub fn advertised_host(&self) -> &str {
        self.announce_ip.as_deref().unwrap_or(&self.bind)
    }

    /// Merges flags over the optional file and applies defaults.
    pub fn resolve(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileConfig::default(),
        };
        let bind = cli.bind.or(file.bind).unwrap_or_else(|| "127.0.0.1".into());
        let port = cli.port.or(file.port).unwrap_or(6379);
        let tls_auth_clients = match (cli.tls_auth_clients, &file.tls_auth_clients) {
            (Some(a), _) => a,
            (None, Some(text)) => parse_tls_auth_clients(text)
                .map_err(|e| ConfigError::Invalid(format!("tls-auth-clients: {e}")))?,
            (None, None) => TlsAuthClients::default(),
        };
        let tls = TlsSettings {
            port: cli.tls_port.or(file.tls_port).unwrap_or(0),
            cert_file: cli.tls_cert_file.or(file.tls_cert_file),
            key_file: cli.tls_key_file.or(file.tls_key_file),
            ca_cert_file: cli.tls_ca_cert_file.or(file.tls_ca_cert_file),
            auth_clients: tls_auth_clients,
        };
        tls.validate(port)?;
        // As in Redis, `--port 0` turns plain TCP off; the TLS port then
        // stands in for it where other ports and the node name derive.
        let base_port = match (port, tls.port) {
            (0, 0) => {
                return Err(ConfigError::Invalid(
                    "--port 0 without --tls-port leaves no client port".into(),
                ));
            }
            (0, tls_port) => tls_port,
            (port, _) => port,
        };
        let cluster_port = match cli.cluster_port.or(file.cluster_port) {
            Some(p) => p,
            None => base_port.checked_add(10000).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "port {base_port} + 10000 is not a port; set --cluster-port"
                ))
            })?,
        };
        let metrics_port = cli
            .metrics_port
            .or(file.metrics_port)
            .unwrap_or_else(|| base_port.checked_add(20000).unwrap_or(0));
        let n = cli.n.or(file.n).unwrap_or(3);
        let r = cli.r.or(file.r).unwrap_or(2);
        let w = cli.w.or(file.w).unwrap_or(2);
        if n == 0 || r == 0 || w == 0 {
            return Err(ConfigError::Invalid("n, r and w must be at least 1".into()));
        }
        if r > n || w > n {
            return Err(ConfigError::Invalid(format!(
                "r ({r}) and w ({w}) cannot exceed n ({n})"
            )));
        }
        let proto_max_bulk_len = match (cli.proto_max_bulk_len, &file.proto_max_bulk_len) {
            (Some(bytes), _) => bytes,
            (None, Some(value)) => parse_proto_max_bulk_len(&value.text())
                .map_err(|e| ConfigError::Invalid(format!("proto-max-bulk-len: {e}")))?,
            (None, None) => DEFAULT_PROTO_MAX_BULK_LEN,
        };
        let memcache_max_item_size =
            match (cli.memcache_max_item_size, &file.memcache_max_item_size) {
                (Some(bytes), _) => bytes,
                (None, Some(value)) => parse_memcache_max_item_size(&value.text())
                    .map_err(|e| ConfigError::Invalid(format!("memcache-max-item-size: {e}")))?,
                (None, None) => DEFAULT_MEMCACHE_MAX_ITEM_SIZE,
            };
        let requirepass = cli.requirepass.or(file.requirepass);
        // A password-protected RESP port must not get an open memcached
        // door beside it: the default port stays shut, a named one asks
        // for memcached's text-protocol authentication.
        let memcache = match cli.memcache_port.or(file.memcache_port) {
            Some(0) => MemcachePort::Off,
            Some(p) => MemcachePort::Explicit(p),
            None if requirepass.is_some() => MemcachePort::Off,
            None => MemcachePort::Default(DEFAULT_MEMCACHE_PORT),
        };
        let protected_mode = match (cli.protected_mode, &file.protected_mode) {
            (Some(on), _) => on,
            (None, Some(YesNo::Bool(on))) => *on,
            (None, Some(YesNo::Text(text))) => parse_yes_no(text)
                .map_err(|e| ConfigError::Invalid(format!("protected-mode: {e}")))?,
            (None, None) => true,
        };
        let timeout_secs = match (cli.timeout, file.timeout) {
            (Some(t), _) => t,
            (None, Some(t)) => parse_timeout(&t.to_string())
                .map_err(|e| ConfigError::Invalid(format!("timeout: {e}")))?,
            (None, None) => 0,
        };
        let notify_keyspace_events =
            match (cli.notify_keyspace_events, &file.notify_keyspace_events) {
                (Some(flags), _) => flags,
                (None, Some(text)) => parse_notify_keyspace_events(text)
                    .map_err(|e| ConfigError::Invalid(format!("notify-keyspace-events: {e}")))?,
                (None, None) => 0,
            };
        let read_repair = match (cli.read_repair, &file.read_repair) {
            (Some(on), _) => on,
            (None, Some(YesNo::Bool(on))) => *on,
            (None, Some(YesNo::Text(text))) => {
                parse_on_off(text).map_err(|e| ConfigError::Invalid(format!("read-repair: {e}")))?
            }
            (None, None) => true,
        };
        let anti_entropy_interval_secs = cli
            .anti_entropy_interval
            .or(file.anti_entropy_interval)
            .unwrap_or(crate::node::cluster::DEFAULT_AE_INTERVAL_SECS);
        let node_name = cli
            .node_name
            .or(file.node_name)
            .unwrap_or_else(|| format!("{bind}:{base_port}"));
        let announce_ip = cli
            .announce_ip
            .or(file.announce_ip)
            .map(|a| a.trim().to_string());
        if announce_ip.as_deref() == Some("") {
            return Err(ConfigError::Invalid("announce-ip is empty".into()));
        }
        Ok(Config {
            bind,
            announce_ip,
            port,
            cluster_port,
            metrics_port,
            cluster_client_port: cli
                .cluster_client_port
                .or(file.cluster_client_port)
                .unwrap_or(0),
            data_dir: cli
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./dynkv-data")),
            node_name,
            join: cli.join.or(file.join),
            n,
            r,
            w,
            requirepass,
            memcache,
            memcache_max_item_size,
            cluster_secret: resolve_secret(
                cli.cluster_secret,
                cli.cluster_secret_file,
                file.cluster_secret,
                file.cluster_secret_file,
            )?,
            fsync: cli.fsync.or(file.fsync).unwrap_or_default(),
            maxclients: cli.maxclients.or(file.maxclients).unwrap_or(10_000),
            io_threads: cli
                .io_threads
                .or(file.io_threads)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() / 2))
                .max(1),
            max_offset_ms: cli.max_offset.or(file.max_offset).unwrap_or(500),
            hint_max_per_target: cli
                .hint_max_per_target
                .or(file.hint_max_per_target)
                .unwrap_or(1_000_000)
                .max(1),
            hint_ttl_secs: cli.hint_ttl.or(file.hint_ttl).unwrap_or(3 * 3600).max(1),
            partitions: match cli.partitions.or(file.partitions) {
                Some(q) => parse_partitions(&q.to_string())
                    .map_err(|e| ConfigError::Invalid(format!("partitions: {e}")))?,
                None => crate::core::DEFAULT_PARTITIONS,
            },
            tombstone_grace_secs: cli
                .tombstone_grace
                .or(file.tombstone_grace)
                .unwrap_or(DEFAULT_TOMBSTONE_GRACE_SECS),
            databases: match cli.databases.or(file.databases) {
                Some(n) => parse_databases(&n.to_string())
                    .map_err(|e| ConfigError::Invalid(format!("databases: {e}")))?,
                None => DEFAULT_DATABASES,
            },
            proto_max_bulk_len,
            tls,
            protected_mode,
            timeout_secs,
            notify_keyspace_events,
            read_repair,
            anti_entropy_interval_secs,
            storage_cached_files: crate::fdlimit::MAX_STORAGE_CACHED_FILES as usize,
        })
    }
}

/// The cluster secret from the flags or the file; the command line wins as
/// a whole (a flag given there replaces either key of the file).
fn resolve_secret(
    cli_text: Option<String>,
    cli_path: Option<PathBuf>,
    file_text: Option<String>,
    file_path: Option<PathBuf>,
) -> Result<Option<ClusterSecret>, ConfigError> {
    let (text, path) = if cli_text.is_some() || cli_path.is_some() {
        (cli_text, cli_path)
    } else {
        (file_text, file_path)
    };
    let invalid = |what: String| ConfigError::Invalid(what);
    match (text, path) {
        (Some(_), Some(_)) => Err(invalid(
            "give either cluster-secret or cluster-secret-file, not both".into(),
        )),
        (Some(text), None) => ClusterSecret::new(&text)
            .map(Some)
            .map_err(|e| invalid(format!("--cluster-secret: {e}"))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(format!(
                    "cannot read --cluster-secret-file {}: {e}",
                    path.display()
                ))
            })?;
            ClusterSecret::new(&text)
                .map(Some)
                .map_err(|e| invalid(format!("--cluster-secret-file {}: {e}", path.display())))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_values_are_read_as_redis_reads_them() {
        assert_eq!(parse_memory("1048576"), Some(1_048_576));
        assert_eq!(parse_memory("32mb"), Some(32 * 1024 * 1024));
        assert_eq!(parse_memory("32MB"), Some(32 * 1024 * 1024));
        assert_eq!(parse_memory("2m"), Some(2_000_000));
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("500k"), Some(500_000));
        assert_eq!(parse_memory("7b"), Some(7));
        assert_eq!(parse_memory("mb"), Some(0));
        for bad in [
            "-5",
            "1.5mb",
            " 1mb",
            "1 mb",
            "1tb",
            "abc",
            "99999999999999999999",
        ] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
        assert_eq!(parse_memory("18446744073709551615gb"), None);
    }

    #[test]
    fn proto_max_bulk_len_range() {
        assert_eq!(parse_proto_max_bulk_len("1mb"), Ok(MIN_PROTO_MAX_BULK_LEN));
        assert_eq!(parse_proto_max_bulk_len("32mb"), Ok(MAX_PROTO_MAX_BULK_LEN));
        let out_of_range = Err(MemoryValueError::OutOfRange {
            min: MIN_PROTO_MAX_BULK_LEN,
            max: MAX_PROTO_MAX_BULK_LEN,
        });
        assert_eq!(parse_proto_max_bulk_len("1048575"), out_of_range);
        assert_eq!(parse_proto_max_bulk_len("33554433"), out_of_range);
        assert_eq!(parse_proto_max_bulk_len("512mb"), out_of_range);
        assert_eq!(
            parse_proto_max_bulk_len("-1"),
            Err(MemoryValueError::NotAMemoryValue)
        );
        assert_eq!(
            out_of_range.map_err(|e| e.to_string()),
            Err("argument must be between 1048576 and 33554432 inclusive".to_string())
        );
    }

    #[test]
    fn announce_ip_from_flag_or_file_defaults_to_bind() {
        let resolve = |cli: Cli| Config::resolve(cli).map(|c| c.advertised_host().to_string());
        let bind = Cli::try_parse_from(["dynkv", "--bind", "0.0.0.0"]).expect("parse");
        assert_eq!(resolve(bind).ok().as_deref(), Some("0.0.0.0"));
        let flag = Cli::try_parse_from(["dynkv", "--bind", "0.0.0.0", "--announce-ip", "n1"])
            .expect("parse");
        assert_eq!(resolve(flag).ok().as_deref(), Some("n1"));
        let empty = Cli::try_parse_from(["dynkv", "--announce-ip", " "]).expect("parse");
        assert!(resolve(empty).is_err());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dynkv.toml");
        std::fs::write(&path, "bind = \"0.0.0.0\"\nannounce-ip = \"10.0.0.7\"\n")
            .expect("write config");
        let file = Cli {
            config: Some(path),
            ..Cli::default()
        };
        assert_eq!(resolve(file).ok().as_deref(), Some("10.0.0.7"));
    }

    #[test]
    fn memcache_port_is_shut_by_default_under_a_password() {
        let port = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("parse");
            let c = Config::resolve(cli).expect("resolve");
            (c.memcache, c.memcache_max_item_size)
        };
        assert_eq!(
            port(&["dynkv"]),
            (
                MemcachePort::Default(DEFAULT_MEMCACHE_PORT),
                DEFAULT_MEMCACHE_MAX_ITEM_SIZE
            )
        );
        assert_eq!(
            port(&["dynkv", "--memcache-port", "0"]).0,
            MemcachePort::Off
        );
        assert_eq!(port(&["dynkv", "--requirepass", "pw"]).0, MemcachePort::Off);
        assert_eq!(
            port(&["dynkv", "--requirepass", "pw", "--memcache-port", "11300"]).0,
            MemcachePort::Explicit(11300)
        );
        assert_eq!(
            port(&["dynkv", "--memcache-max-item-size", "2mb"]).1,
            2 * 1024 * 1024
        );
        assert!(Cli::try_parse_from(["dynkv", "--memcache-max-item-size", "10"]).is_err());
    }

    #[test]
    fn proto_max_bulk_len_from_flag_file_or_default() {
        let resolve = |cli: Cli| Config::resolve(cli).map(|c| c.proto_max_bulk_len);
        assert_eq!(
            resolve(Cli::default()).ok(),
            Some(DEFAULT_PROTO_MAX_BULK_LEN)
        );
        let parsed = Cli::try_parse_from(["dynkv", "--proto-max-bulk-len", "2mb"])
            .map(|cli| cli.proto_max_bulk_len);
        assert_eq!(parsed.ok(), Some(Some(2 * 1024 * 1024)));
        assert!(Cli::try_parse_from(["dynkv", "--proto-max-bulk-len", "64mb"]).is_err());

        let dir = tempfile::tempdir().expect("tempdir");
        let write = |text: &str| {
            let path = dir.path().join("dynkv.toml");
            std::fs::write(&path, text).expect("write config");
            Cli {
                config: Some(path),
                ..Cli::default()
            }
        };
        assert_eq!(
            resolve(write("proto-max-bulk-len = \"4mb\"\n")).ok(),
            Some(4 * 1024 * 1024)
        );
        assert_eq!(
            resolve(write("proto-max-bulk-len = 2097152\n")).ok(),
            Some(2 * 1024 * 1024)
        );
        assert!(resolve(write("proto-max-bulk-len = 1000\n")).is_err());
        // The flag wins over the file.
        let mut both = write("proto-max-bulk-len = \"4mb\"\n");
        both.proto_max_bulk_len = Some(3 * 1024 * 1024);
        assert_eq!(resolve(both).ok(), Some(3 * 1024 * 1024));
    }

    #[test]
    fn cluster_secret_from_flag_file_or_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "from-file\n").expect("write secret");
        let resolve = |cli: Cli| Config::resolve(cli).map(|c| c.cluster_secret);
        assert_eq!(resolve(Cli::default()).ok(), Some(None));
        let flag = Cli::try_parse_from(["dynkv", "--cluster-secret", "s3cret"]).expect("parse");
        let secret = resolve(flag).ok().flatten();
        assert_eq!(secret, ClusterSecret::new("s3cret").ok());
        assert!(!format!("{secret:?}").contains("s3cret"));
        let path = secret_file.display().to_string();
        let flag = Cli::try_parse_from(["dynkv", "--cluster-secret-file", &path]).expect("parse");
        assert_eq!(
            resolve(flag).ok().flatten(),
            ClusterSecret::new("from-file").ok()
        );
        assert!(
            Cli::try_parse_from([
                "dynkv",
                "--cluster-secret",
                "a",
                "--cluster-secret-file",
                &path
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from(["dynkv", "--cluster-secret", ""])
                .is_ok_and(|c| resolve(c).is_err())
        );
        let toml = dir.path().join("dynkv.toml");
        std::fs::write(&toml, format!("cluster-secret-file = {path:?}\n")).expect("write config");
        let from_config = Cli {
            config: Some(toml),
            ..Cli::default()
        };
        assert_eq!(
            resolve(from_config).ok().flatten(),
            ClusterSecret::new("from-file").ok()
        );
    }

    #[test]
    fn tls_settings_from_flags_and_file() {
        let parse = |args: &[&str]| {
            let argv = std::iter::once("dynkv").chain(args.iter().copied());
            Cli::try_parse_from(argv)
                .map_err(|e| e.to_string())
                .and_then(|cli| Config::resolve(cli).map_err(|e| e.to_string()))
        };
        let off = parse(&[]).expect("defaults");
        assert_eq!(off.tls.port, 0);
        assert_eq!(off.tls.auth_clients, TlsAuthClients::Yes);

        let files = ["--tls-cert-file", "s.crt", "--tls-key-file", "s.key"];
        let err = parse(&["--tls-port", "6380"]).expect_err("no cert");
        assert!(err.contains("--tls-cert-file"), "{err}");
        let err = parse(&[&["--tls-port", "6380"][..], &files].concat()).expect_err("no CA");
        assert!(err.contains("--tls-ca-cert-file"), "{err}");
        let no_auth = [
            &["--tls-port", "6380", "--tls-auth-clients", "NO"][..],
            &files,
        ]
        .concat();
        assert_eq!(
            parse(&no_auth).map(|c| c.tls.auth_clients),
            Ok(TlsAuthClients::No)
        );
        assert!(parse(&["--tls-auth-clients", "maybe"]).is_err());
        let err = parse(&[&["--port", "6380"][..], &no_auth].concat()).expect_err("same port");
        assert!(err.contains("also --port"), "{err}");

        // --port 0: TLS only, and the other ports follow the TLS port.
        let err = parse(&["--port", "0"]).expect_err("no port at all");
        assert!(err.contains("--tls-port"), "{err}");
        let only = parse(&[&["--port", "0"][..], &no_auth].concat()).expect("TLS only");
        assert_eq!((only.port, only.tls.port), (0, 6380));
        assert_eq!((only.cluster_port, only.metrics_port), (16380, 26380));
        assert_eq!(only.node_name, "127.0.0.1:6380");

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dynkv.toml");
        std::fs::write(
            &path,
            "tls-port = 6390\ntls-cert-file = \"a.crt\"\ntls-key-file = \"a.key\"\n\
             tls-ca-cert-file = \"ca.crt\"\ntls-auth-clients = \"optional\"\n",
        )
        .expect("write config");
        let path = path.display().to_string();
        let from_file = parse(&["--config", &path]).expect("file");
        assert_eq!(from_file.tls.port, 6390);
        assert_eq!(from_file.tls.auth_clients, TlsAuthClients::Optional);
        assert_eq!(from_file.tls.ca_cert_file, Some(PathBuf::from("ca.crt")));
        // Flags win over the file.
        let flag = parse(&["--config", &path, "--tls-auth-clients", "yes"]).expect("flag");
        assert_eq!(flag.tls.auth_clients, TlsAuthClients::Yes);
    }

    #[test]
    fn tombstone_grace_from_flag_file_or_default() {
        let resolve = |cli: Cli| Config::resolve(cli).map(|c| c.tombstone_grace_secs);
        assert_eq!(resolve(Cli::default()).ok(), Some(3600));
        let flag = Cli::try_parse_from(["dynkv", "--tombstone-grace", "2"]).expect("flag");
        assert_eq!(resolve(flag).ok(), Some(2));
        assert!(Cli::try_parse_from(["dynkv", "--tombstone-grace", "-1"]).is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dynkv.toml");
        std::fs::write(&path, "tombstone-grace = 30\n").expect("write config");
        let file = Cli {
            config: Some(path.clone()),
            ..Cli::default()
        };
        assert_eq!(resolve(file).ok(), Some(30));
        let both = Cli {
            config: Some(path),
            tombstone_grace: Some(5),
            ..Cli::default()
        };
        assert_eq!(resolve(both).ok(), Some(5));
    }

    #[test]
    fn notify_keyspace_events_from_flag_file_or_default() {
        let resolve = |cli: Cli| Config::resolve(cli).map(|c| c.notify_keyspace_events);
        assert_eq!(resolve(Cli::default()).ok(), Some(0));
        let flag = Cli::try_parse_from(["dynkv", "--notify-keyspace-events", "KEA"]).expect("flag");
        assert_eq!(
            resolve(flag).ok(),
            crate::resp::notify::parse_classes("KEA").ok()
        );
        assert!(Cli::try_parse_from(["dynkv", "--notify-keyspace-events", "Kq"]).is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dynkv.toml");
        std::fs::write(&path, "notify-keyspace-events = \"Kg$x\"\n").expect("write config");
        let file = Cli {
            config: Some(path),
            ..Cli::default()
        };
        assert_eq!(
            resolve(file).ok(),
            crate::resp::notify::parse_classes("Kg$x").ok()
        );
    }

    #[test]
    fn protected_mode_and_timeout_from_flag_file_or_default() {
        let defaults = Config::resolve(Cli::default()).expect("defaults");
        assert!(defaults.protected_mode);
        assert_eq!(defaults.timeout_secs, 0);
        let cli = Cli::try_parse_from(["dynkv", "--protected-mode", "no", "--timeout", "30"])
            .expect("flags");
        let c = Config::resolve(cli).expect("resolve");
        assert!(!c.protected_mode);
        assert_eq!(c.timeout_secs, 30);
        assert!(Cli::try_parse_from(["dynkv", "--protected-mode", "maybe"]).is_err());
        assert!(Cli::try_parse_from(["dynkv", "--timeout", "-1"]).is_err());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dynkv.toml");
        for (text, protected) in [
            ("protected-mode = \"no\"\ntimeout = 5\n", false),
            ("protected-mode = false\n", false),
            ("protected-mode = \"yes\"\n", true),
        ] {
            std::fs::write(&path, text).expect("write config");
            let c = Config::resolve(Cli {
                config: Some(path.clone()),
                ..Cli::default()
            })
            .expect("resolve");
            assert_eq!(c.protected_mode, protected, "{text}");
        }
        std::fs::write(&path, "protected-mode = \"maybe\"\n").expect("write config");
        assert!(
            Config::resolve(Cli {
                config: Some(path.clone()),
                ..Cli::default()
            })
            .is_err()
        );
    }

    #[test]
    fn read_repair_and_anti_entropy_interval_from_flag_file_or_default() {
        let defaults = Config::resolve(Cli::default()).expect("defaults");
        assert!(defaults.read_repair);
        assert_eq!(defaults.anti_entropy_interval_secs, 10);
        let cli = Cli::try_parse_from([
            "dynkv",
            "--read-repair",
            "off",
            "--anti-entropy-interval",
            "1",
        ])
        .expect("flags");
        let c = Config::resolve(cli).expect("resolve");
        assert!(!c.read_repair);
        assert_eq!(c.anti_entropy_interval_secs, 1);
        assert!(Cli::try_parse_from(["dynkv", "--read-repair", "maybe"]).is_err());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dynkv.toml");
        for (text, on) in [
            ("read-repair = \"off\"\n", false),
            ("read-repair = false\n", false),
            ("read-repair = \"on\"\nanti-entropy-interval = 3\n", true),
        ] {
            std::fs::write(&path, text).expect("write config");
            let c = Config::resolve(Cli {
                config: Some(path.clone()),
                ..Cli::default()
            })
            .expect("resolve");
            assert_eq!(c.read_repair, on, "{text}");
        }
        std::fs::write(&path, "read-repair = \"maybe\"\n").expect("write config");
        assert!(
            Config::resolve(Cli {
                config: Some(path),
                ..Cli::default()
            })
            .is_err()
        );
    }
}
