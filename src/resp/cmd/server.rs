//! Server commands: COMMAND, CONFIG, INFO, TIME, DBSIZE, FLUSHDB/FLUSHALL,
//! LASTSAVE, SAVE/BGSAVE, WAIT.
//!
//! Tools ask for these when they connect (redis-cli: COMMAND DOCS; clients:
//! CONFIG GET, INFO); they get answers that let them carry on.

use super::connection::REDIS_VERSION;
use super::{
    COMMANDS, CmdResult, CommandSpec, canonical_i64, is, kv_error, lookup, parse_i64, syntax_error,
};
use crate::config::parse_proto_max_bulk_len;
use crate::kv::Kv;
use crate::obs::sys::{self, human_bytes};
use crate::resp::glob::glob_match_nocase;
use crate::resp::reply::Reply;
use crate::resp::session::{ServerState, Session};
use bytes::Bytes;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs a server command.
pub async fn run<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    name: &str,
    args: &[Bytes],
) -> CmdResult {
    match name {
        "command" => command(args),
        "slowlog" | "latency" | "memory" | "monitor" => {
            super::diag::run(kv, server, session, name, args).await
        }
        "config" => config(server, args),
        "info" => Ok(Reply::Verbatim(info(kv, server, &args[1..]))),
        "time" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            Ok(Reply::Array(vec![
                Reply::bulk(now.as_secs().to_string()),
                Reply::bulk(now.subsec_micros().to_string()),
            ]))
        }
        "dbsize" => Ok(Reply::Int(kv.key_count() as i64)),
        "flushdb" | "flushall" => {
            match &args[1..] {
                [] => {}
                [mode] if is(mode, "ASYNC") || is(mode, "SYNC") => {}
                _ => return Err(syntax_error()),
            }
            if name == "flushdb" {
                kv.flush_db(session.db).await.map_err(kv_error)?;
            } else {
                kv.flush_all().await.map_err(kv_error)?;
            }
            Ok(Reply::ok())
        }
        "lastsave" => Ok(Reply::Int(server.last_save.load(Ordering::Relaxed) as i64)),
        "save" | "bgsave" => {
            kv.sync().await.map_err(kv_error)?;
            let now = kv.now_ms() / 1000;
            server.last_save.store(now, Ordering::Relaxed);
            Ok(if name == "save" {
                Reply::ok()
            } else {
                Reply::Simple("Background saving started".into())
            })
        }
        "shutdown" => {
            for opt in &args[1..] {
                if !["NOSAVE", "SAVE", "NOW", "FORCE", "ABORT"]
                    .iter()
                    .any(|o| is(opt, o))
                {
                    return Err(syntax_error());
                }
            }
            // Storage is flushed on the way out whatever the option says:
            // every acknowledged write is already in the journal.
            tracing::info!("SHUTDOWN requested by client {}", session.addr);
            server.shutdown.cancel();
            session.quit = true;
            Ok(Reply::ok())
        }
        "wait" => {
            parse_i64(&args[1])?;
            let timeout = parse_i64(&args[2])?;
            if timeout < 0 {
                return Err(Reply::err("timeout is negative"));
            }
            // Writes are acknowledged only after W replicas have them, so
            // every replica a write reaches already has it.
            Ok(Reply::Int(kv.replica_count() as i64))
        }
        _ => Err(Reply::err(format!("'{name}' is not a server command"))),
    }
}

fn command_info(spec: &CommandSpec) -> Reply {
    let category = match spec.group {
        "string" => "@string",
        "generic" => "@keyspace",
        "connection" => "@connection",
        "dynamo" => "@dynamo",
        "hash" => "@hash",
        "set" => "@set",
        "sorted-set" => "@sortedset",
        "list" => "@list",
        "bitmap" => "@bitmap",
        "transactions" => "@transaction",
        "scripting" => "@scripting",
        "pubsub" => "@pubsub",
        _ => "@admin",
    };
    Reply::Array(vec![
        Reply::bulk(spec.name),
        Reply::Int(spec.arity as i64),
        Reply::Set(
            spec.flags
                .iter()
                .map(|f| Reply::Simple((*f).into()))
                .collect(),
        ),
        Reply::Int(spec.first_key as i64),
        Reply::Int(spec.last_key as i64),
        Reply::Int(spec.step as i64),
        Reply::Set(vec![Reply::Simple(category.into())]),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn command_docs(spec: &CommandSpec) -> Reply {
    let mut docs = vec![
        (Reply::bulk("summary"), Reply::bulk(spec.summary)),
        (Reply::bulk("since"), Reply::bulk("1.0.0")),
        (Reply::bulk("group"), Reply::bulk(spec.group)),
    ];
    let arguments = super::docs::arguments(spec.name);
    if !arguments.is_empty() {
        docs.push((Reply::bulk("arguments"), Reply::Array(arguments)));
    }
    let subcommands = super::docs::subcommands(spec.name);
    if !subcommands.is_empty() {
        let subs = subcommands
            .into_iter()
            .map(|(full, summary, arguments)| {
                let mut doc = vec![
                    (Reply::bulk("summary"), Reply::bulk(summary)),
                    (Reply::bulk("since"), Reply::bulk("1.0.0")),
                    (Reply::bulk("group"), Reply::bulk(spec.group)),
                ];
                if !arguments.is_empty() {
                    doc.push((Reply::bulk("arguments"), Reply::Array(arguments)));
                }
                (Reply::bulk(full), Reply::Map(doc))
            })
            .collect();
        docs.push((Reply::bulk("subcommands"), Reply::Map(subs)));
    }
    Reply::Map(docs)
}

fn command(args: &[Bytes]) -> CmdResult {
    let Some(sub) = args.get(1) else {
        return Ok(Reply::Array(COMMANDS.iter().map(command_info).collect()));
    };
    let names = &args[2..];
    if is(sub, "COUNT") {
        Ok(Reply::Int(COMMANDS.len() as i64))
    } else if is(sub, "INFO") {
        if names.is_empty() {
            return Ok(Reply::Array(COMMANDS.iter().map(command_info).collect()));
        }
        Ok(Reply::Array(
            names
                .iter()
                .map(|n| lookup(n).map_or(Reply::NullArray, command_info))
                .collect(),
        ))
    } else if is(sub, "DOCS") {
        let specs: Vec<&CommandSpec> = if names.is_empty() {
            COMMANDS.iter().collect()
        } else {
            names.iter().filter_map(|n| lookup(n)).collect()
        };
        Ok(Reply::Map(
            specs
                .into_iter()
                .map(|s| (Reply::bulk(s.name), command_docs(s)))
                .collect(),
        ))
    } else if is(sub, "LIST") {
        Ok(Reply::Array(
            COMMANDS.iter().map(|c| Reply::bulk(c.name)).collect(),
        ))
    } else {
        Err(Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        )))
    }
}

/// Parameters CONFIG GET reports. Values set with CONFIG SET are remembered
/// (so clients that set and read back work) but do not change dynkv, except
/// `proto-max-bulk-len`, which is applied (see [`Update`]).
fn config_params(server: &ServerState) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("appendfsync", server.appendfsync.clone()),
        ("appendonly", "yes".into()),
        ("bind", "127.0.0.1".into()),
        (
            "client-output-buffer-limit",
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60".into(),
        ),
        ("cluster-enabled", "no".into()),
        ("databases", server.databases().to_string()),
        ("dir", server.data_dir.clone()),
        (
            "latency-monitor-threshold",
            server.obs.latency.threshold_ms().to_string(),
        ),
        ("lazyfree-lazy-user-del", "no".into()),
        ("maxclients", server.maxclients.to_string()),
        ("maxmemory", "0".into()),
        ("maxmemory-policy", "noeviction".into()),
        (
            "notify-keyspace-events",
            crate::resp::notify::classes_to_string(server.notify.classes()),
        ),
        ("port", server.port.to_string()),
        (
            "protected-mode",
            if server.protected_mode() { "yes" } else { "no" }.into(),
        ),
        (
            "proto-max-bulk-len",
            server.proto_max_bulk_len().to_string(),
        ),
        (
            "read-repair",
            if server.read_repair() { "on" } else { "off" }.into(),
        ),
        (
            "requirepass",
            server.requirepass.clone().unwrap_or_default(),
        ),
        ("save", String::new()),
        (
            "slowlog-log-slower-than",
            server.obs.slowlog.slower_than_us().to_string(),
        ),
        ("slowlog-max-len", server.obs.slowlog.max_len().to_string()),
        ("tcp-keepalive", "300".into()),
        ("timeout", server.timeout_secs().to_string()),
        (
            "tombstone-grace",
            server
                .tombstone_grace_secs
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        ),
    ];
    params.extend(tls_params(server));
    let overrides = server.config_overrides.lock();
    for (name, value) in params.iter_mut() {
        if let Some(v) = overrides.get(*name) {
            *value = v.clone();
        }
    }
    params
}

/// The `tls-*` parameters, as Redis names them ("" for a file not given).
fn tls_params(server: &ServerState) -> Vec<(&'static str, String)> {
    let tls = server.tls();
    let file = |f: &Option<std::path::PathBuf>| {
        f.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    vec![
        ("tls-auth-clients", tls.auth_clients.as_str().into()),
        ("tls-ca-cert-file", file(&tls.ca_cert_file)),
        ("tls-cert-file", file(&tls.cert_file)),
        ("tls-key-file", file(&tls.key_file)),
        ("tls-port", tls.port.to_string()),
    ]
}

/// Parameters that describe how the process was started (the TLS files are
/// read once, at startup).
const IMMUTABLE: &[&str] = &[
    "bind",
    "cluster-enabled",
    "databases",
    "dir",
    "port",
    "tls-auth-clients",
    "tls-ca-cert-file",
    "tls-cert-file",
    "tls-key-file",
    "tls-port",
];

/// A CONFIG SET change, validated before any is applied (as Redis does: one
/// bad pair fails the whole command and changes nothing).
enum Update {
    /// Changes what dynkv does, so it is validated and applied rather than
    /// remembered as text.
    ProtoMaxBulkLen(usize),
    /// `slowlog-log-slower-than` (µs; negative = off).
    SlowlogSlowerThan(i64),
    /// `slowlog-max-len`.
    SlowlogMaxLen(usize),
    /// `latency-monitor-threshold` (ms; 0 = off).
    LatencyThreshold(u64),
    /// Applied to connections accepted from now on.
    ProtectedMode(bool),
    /// Applied to every connection, idle ones included.
    Timeout(u64),
    /// `notify-keyspace-events` classes.
    NotifyKeyspaceEvents(u32),
    /// Remembered for CONFIG GET only.
    Remembered(String, String),
}

/// Redis's CONFIG SET failure text.
fn set_failed(name: &str, why: impl std::fmt::Display) -> Reply {
    Reply::err(format!(
        "CONFIG SET failed (possibly related to argument '{name}') - {why}"
    ))
}

fn config(server: &ServerState, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "GET") {
        if args.len() < 3 {
            return Err(super::wrong_arity("config|get"));
        }
        let params = config_params(server);
        let mut out = Vec::new();
        for (name, value) in &params {
            if args[2..]
                .iter()
                .any(|p| glob_match_nocase(p, name.as_bytes()))
            {
                out.push((Reply::bulk(*name), Reply::bulk(value.clone())));
            }
        }
        Ok(Reply::Map(out))
    } else if is(sub, "SET") {
        if args.len() < 4 || !args.len().is_multiple_of(2) {
            return Err(super::wrong_arity("config|set"));
        }
        let known = config_params(server);
        let mut updates = Vec::new();
        for pair in args[2..].chunks_exact(2) {
            let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
            if !known.iter().any(|(n, _)| *n == name) {
                return Err(Reply::err(format!(
                    "Unknown option or number of arguments for CONFIG SET - '{name}'"
                )));
            }
            if IMMUTABLE.contains(&name.as_str()) {
                return Err(Reply::err(format!(
                    "CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
                )));
            }
            let value = String::from_utf8_lossy(&pair[1]).into_owned();
            let bad = |what: &str| {
                Reply::err(format!(
                    "CONFIG SET failed (possibly related to argument '{name}') - {what}"
                ))
            };
            let int = canonical_i64(value.as_bytes());
            updates.push(match name.as_str() {
                "slowlog-log-slower-than" => Update::SlowlogSlowerThan(
                    int.filter(|v| *v >= -1)
                        .ok_or_else(|| bad("argument must be an integer >= -1"))?,
                ),
                "slowlog-max-len" => Update::SlowlogMaxLen(
                    int.and_then(|v| usize::try_from(v).ok())
                        .ok_or_else(|| bad("argument must be a non-negative integer"))?,
                ),
                "latency-monitor-threshold" => Update::LatencyThreshold(
                    int.and_then(|v| u64::try_from(v).ok())
                        .ok_or_else(|| bad("argument must be a non-negative integer"))?,
                ),
                "proto-max-bulk-len" => {
                    Update::ProtoMaxBulkLen(parse_proto_max_bulk_len(&value).map_err(|e| {
                        Reply::err(format!(
                            "CONFIG SET failed (possibly related to argument '{name}') - {e}"
                        ))
                    })?)
                }
                "protected-mode" => Update::ProtectedMode(
                    crate::config::parse_yes_no(&value).map_err(|e| set_failed(&name, e))?,
                ),
                "notify-keyspace-events" => Update::NotifyKeyspaceEvents(
                    crate::resp::notify::parse_classes(&value).map_err(|e| set_failed(&name, e))?,
                ),
                "timeout" => Update::Timeout(
                    crate::config::parse_timeout(&value).map_err(|e| set_failed(&name, e))?,
                ),
                _ => Update::Remembered(name, value),
            });
        }
        for update in updates {
            match update {
                Update::ProtoMaxBulkLen(bytes) => server.set_proto_max_bulk_len(bytes),
                Update::SlowlogSlowerThan(us) => server.obs.slowlog.set_slower_than_us(us),
                Update::SlowlogMaxLen(len) => server.obs.slowlog.set_max_len(len),
                Update::LatencyThreshold(ms) => server.obs.latency.set_threshold_ms(ms),
                Update::ProtectedMode(on) => server.set_protected_mode(on),
                Update::Timeout(secs) => server.set_timeout_secs(secs),
                Update::NotifyKeyspaceEvents(flags) => server.notify.set_classes(flags),
                Update::Remembered(name, value) => {
                    server.config_overrides.lock().insert(name, value);
                }
            }
        }
        Ok(Reply::ok())
    } else if is(sub, "RESETSTAT") {
        server.stats.reset();
        server.obs.reset();
        Ok(Reply::ok())
    } else if is(sub, "REWRITE") {
        Err(Reply::err(
            "CONFIG REWRITE is not supported: dynkv is configured by flags or --config TOML",
        ))
    } else {
        Err(Reply::err(format!(
            "unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(sub)
        )))
    }
}

/// Every section, in the order Redis prints them (`dynamo` is dynkv's own).
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "errorstats",
    "cluster",
    "keyspace",
    "dynamo",
];

/// Sections left out of a bare INFO (and of `INFO default`), as in Redis.
const NOT_DEFAULT: &[&str] = &["commandstats"];

/// Which sections INFO prints for these (lower-case) arguments: none means
/// the default ones; each argument names a section or `all`, `everything`,
/// `default`.
pub fn selected_sections(asked: &[String]) -> Vec<&'static str> {
    SECTIONS
        .iter()
        .copied()
        .filter(|section| {
            let default = !NOT_DEFAULT.contains(section);
            if asked.is_empty() {
                return default;
            }
            asked.iter().any(|a| {
                a == section || a == "all" || a == "everything" || (a == "default" && default)
            })
        })
        .collect()
}

/// The INFO text for the asked sections (the default ones when none).
pub fn info<K: Kv>(kv: &K, server: &ServerState, asked: &[Bytes]) -> String {
    let wanted: Vec<String> = asked
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let mut out = String::new();
    for section in selected_sections(&wanted) {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let mut title = section.to_string();
        if let Some(first) = title.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        let _ = write!(out, "# {title}\r\n");
        for (k, v) in section_fields(kv, server, section) {
            let _ = write!(out, "{k}:{v}\r\n");
        }
    }
    out
}

fn section_fields<K: Kv>(kv: &K, server: &ServerState, section: &str) -> Vec<(String, String)> {
    let uptime = server.started.elapsed().as_secs();
    let stats = &server.stats;
    let obs = &server.obs;
    let rates = obs.rates.lock().clone();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
    let fields: Vec<(&str, String)> = match section {
        "server" => vec![
            ("redis_version", REDIS_VERSION.into()),
            ("dynkv_version", env!("CARGO_PKG_VERSION").into()),
            ("redis_mode", "standalone".into()),
            ("os", std::env::consts::OS.into()),
            ("arch_bits", "64".into()),
            ("process_id", std::process::id().to_string()),
            ("run_id", server.obs.run_id.clone()),
            ("tcp_port", server.port.to_string()),
            ("uptime_in_seconds", uptime.to_string()),
            ("uptime_in_days", (uptime / 86_400).to_string()),
        ],
        "clients" => vec![
            ("connected_clients", server.clients.len().to_string()),
            ("maxclients", server.maxclients.to_string()),
            (
                "blocked_clients",
                server.key_waiters.blocked_clients().to_string(),
            ),
        ],
        "memory" => {
            let (rss, peak) = server.obs.memory_now();
            vec![
                ("used_memory", rss.to_string()),
                ("used_memory_human", human_bytes(rss)),
                ("used_memory_rss", rss.to_string()),
                ("used_memory_rss_human", human_bytes(rss)),
                ("used_memory_peak", peak.to_string()),
                ("used_memory_peak_human", human_bytes(peak)),
                ("maxmemory", "0".into()),
                ("maxmemory_policy", "noeviction".into()),
                ("mem_fragmentation_ratio", "1.00".into()),
            ]
        }
        "persistence" => vec![
            ("loading", "0".into()),
            ("aof_enabled", "1".into()),
            ("aof_rewrite_in_progress", "0".into()),
            ("rdb_bgsave_in_progress", "0".into()),
            ("rdb_changes_since_last_save", "0".into()),
            (
                "rdb_last_save_time",
                server.last_save.load(Ordering::Relaxed).to_string(),
            ),
            ("dynkv_fsync", server.appendfsync.clone()),
        ],
        "stats" => vec![
            (
                "total_connections_received",
                stats
                    .connections_received
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            (
                "total_commands_processed",
                stats.commands_processed.load(Ordering::Relaxed).to_string(),
            ),
            (
                "rejected_connections",
                stats
                    .rejected_connections
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            (
                "total_error_replies",
                stats.error_replies.load(Ordering::Relaxed).to_string(),
            ),
            (
                "protocol_errors",
                stats.protocol_errors.load(Ordering::Relaxed).to_string(),
            ),
            ("total_net_input_bytes", load(&obs.net_input)),
            ("total_net_output_bytes", load(&obs.net_output)),
            (
                "instantaneous_ops_per_sec",
                format!("{:.0}", rates.ops.rate()),
            ),
            (
                "instantaneous_input_kbps",
                format!("{:.2}", rates.net_in.rate() / 1024.0),
            ),
            (
                "instantaneous_output_kbps",
                format!("{:.2}", rates.net_out.rate() / 1024.0),
            ),
            ("expired_keys", kv.expired_key_count().to_string()),
            ("evicted_keys", "0".into()),
            ("keyspace_hits", load(&obs.keyspace_hits)),
            ("keyspace_misses", load(&obs.keyspace_misses)),
            (
                "acl_access_denied_auth",
                stats.auth_failures.load(Ordering::Relaxed).to_string(),
            ),
            (
                "auth_rate_limited",
                stats.auth_rate_limited.load(Ordering::Relaxed).to_string(),
            ),
            (
                "protected_mode_denied",
                stats
                    .protected_mode_denied
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            (
                "idle_timeouts",
                stats.idle_timeouts.load(Ordering::Relaxed).to_string(),
            ),
        ],
        "cpu" => {
            let (sys, user) = sys::cpu_seconds(false);
            let (csys, cuser) = sys::cpu_seconds(true);
            vec![
                ("used_cpu_sys", format!("{sys:.6}")),
                ("used_cpu_user", format!("{user:.6}")),
                ("used_cpu_sys_children", format!("{csys:.6}")),
                ("used_cpu_user_children", format!("{cuser:.6}")),
            ]
        }
        "commandstats" => {
            let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
            return obs.commands.commandstats(&names);
        }
        "errorstats" => return obs.commands.errorstats(),
        "replication" => vec![("role", "master".into()), ("connected_slaves", "0".into())],
        // Every dynkv node is a cluster node (a lone one serves all slots),
        // so Redis Cluster clients and tools may treat it as one.
        "cluster" => vec![(
            "cluster_enabled",
            u8::from(kv.cluster_view().is_some()).to_string(),
        )],
        "keyspace" => {
            return (0..server.databases())
                .filter_map(|db| {
                    let db = u8::try_from(db).ok()?;
                    let keys = kv.key_count_in(db);
                    let expires = kv.expiring_key_count_in(db);
                    (keys > 0).then(|| {
                        (
                            format!("db{db}"),
                            format!("keys={keys},expires={expires},avg_ttl=0"),
                        )
                    })
                })
                .collect();
        }
        "dynamo" => kv.info_fields(),
        _ => Vec::new(),
    };
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}
