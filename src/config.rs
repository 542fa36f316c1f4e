//! Configuration: command-line flags, optionally layered over a TOML file
//! (`--config`). Flags given on the command line win over the file.

use crate::store::FsyncPolicy;
use clap::Parser;
use serde::Deserialize;
use std::path::PathBuf;

/// Command-line flags (see DESIGN.md §2; the names are a contract).
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
    /// Client (RESP) port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Node-to-node port (default: port + 10000).
    #[arg(long)]
    pub cluster_port: Option<u16>,
    /// Prometheus metrics HTTP port (default: port + 20000; 0 disables).
    #[arg(long)]
    pub metrics_port: Option<u16>,
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
    port: Option<u16>,
    cluster_port: Option<u16>,
    metrics_port: Option<u16>,
    data_dir: Option<PathBuf>,
    node_name: Option<String>,
    join: Option<String>,
    n: Option<usize>,
    r: Option<usize>,
    w: Option<usize>,
    requirepass: Option<String>,
    fsync: Option<FsyncPolicy>,
    maxclients: Option<usize>,
    io_threads: Option<usize>,
    max_offset: Option<u64>,
    hint_max_per_target: Option<u64>,
    hint_ttl: Option<u64>,
}

/// Resolved configuration with defaults applied.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub bind: String,
    /// Client port.
    pub port: u16,
    /// Cluster port.
    pub cluster_port: u16,
    /// Metrics port (0 = off).
    pub metrics_port: u16,
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
        let cluster_port = match cli.cluster_port.or(file.cluster_port) {
            Some(p) => p,
            None => port.checked_add(10000).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "port {port} + 10000 is not a port; set --cluster-port"
                ))
            })?,
        };
        let metrics_port = cli
            .metrics_port
            .or(file.metrics_port)
            .unwrap_or_else(|| port.checked_add(20000).unwrap_or(0));
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
        let node_name = cli
            .node_name
            .or(file.node_name)
            .unwrap_or_else(|| format!("{bind}:{port}"));
        Ok(Config {
            bind,
            port,
            cluster_port,
            metrics_port,
            data_dir: cli
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./dynkv-data")),
            node_name,
            join: cli.join.or(file.join),
            n,
            r,
            w,
            requirepass: cli.requirepass.or(file.requirepass),
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
        })
    }
}
