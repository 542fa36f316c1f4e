//! Feeds the observability counters from the request path: command stats,
//! error stats, the latency histogram, keyspace hits, the slow log, the
//! latency monitor and MONITOR clients.
//!
//! What runs on every command is a clock read, a few relaxed atomics and
//! one histogram sample through a pre-resolved handle; anything that
//! allocates (slow log entries, monitor lines) runs only when enabled.

use super::cmd::CommandSpec;
use super::reply::Reply;
use super::session::{ServerState, Session};
use crate::obs::catalog;
use crate::obs::monitor::{format_line, redact};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A command refused before it ran (unknown, arity, NOAUTH): counted as an
/// error reply and, when known, as a rejected call. Returns `reply`.
pub fn rejected(server: &ServerState, idx: Option<usize>, reply: Reply) -> Reply {
    if let Some(idx) = idx {
        server.obs.commands.record_rejected(idx);
    }
    if let Reply::Error(text) = &reply {
        server.stats.record_error();
        server.obs.commands.record_error(text);
    }
    reply
}

/// Sends a command to the MONITOR clients (call only when some are
/// attached). Admin commands are not shown, as in Redis.
pub fn feed_monitors(server: &ServerState, session: &Session, spec: &CommandSpec, args: &[Bytes]) {
    if spec.flags.contains(&"admin") {
        return;
    }
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    server
        .obs
        .monitors
        .feed(format_line(micros, &session.addr, &redact(args)));
}

/// A command that ran: statistics, histogram, keyspace hits, slow log,
/// latency monitor.
pub fn finished(
    server: &ServerState,
    session: &Session,
    idx: usize,
    spec: &CommandSpec,
    args: &[Bytes],
    started: Instant,
    reply: &Reply,
) {
    let elapsed = started.elapsed();
    let us = elapsed.as_micros() as u64;
    let failed = if let Reply::Error(text) = reply {
        server.stats.record_error();
        server.obs.commands.record_error(text);
        true
    } else {
        false
    };
    server.obs.commands.record_call(idx, us, failed);
    if let Some(h) = catalog::handles().commands.get(idx) {
        h.record(elapsed.as_secs_f64());
    }
    count_keyspace(server, spec.name, args, reply);
    if server.obs.slowlog.is_slow(us) {
        log_slow(server, session, args, us);
    }
    let ms = us / 1000;
    if server.obs.latency.is_spike(ms) {
        let event = if spec.flags.contains(&"fast") {
            "fast-command"
        } else {
            "command"
        };
        server.obs.latency.record(event, unix_secs(), ms);
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn log_slow(server: &ServerState, session: &Session, args: &[Bytes], us: u64) {
    server.obs.slowlog.push(
        &redact(args),
        us,
        unix_secs(),
        session.addr.to_string(),
        session.name.clone().unwrap_or_default(),
    );
}

/// keyspace_hits / keyspace_misses, read off the reply of the commands
/// that look keys up for reading (writes do not count, as in Redis).
fn count_keyspace(server: &ServerState, name: &str, args: &[Bytes], reply: &Reply) {
    let (hits, misses) = match (name, reply) {
        ("get" | "getex" | "getdel", Reply::Bulk(_)) => (1, 0),
        ("get" | "getex" | "getdel", Reply::Null) => (0, 1),
        ("mget", Reply::Array(items)) => {
            let misses = items.iter().filter(|r| matches!(r, Reply::Null)).count() as u64;
            (items.len() as u64 - misses, misses)
        }
        ("exists", Reply::Int(n)) => {
            let asked = args.len() as u64 - 1;
            (*n as u64, asked.saturating_sub(*n as u64))
        }
        ("ttl" | "pttl", Reply::Int(-2)) => (0, 1),
        ("ttl" | "pttl", Reply::Int(_)) => (1, 0),
        ("type", Reply::Simple(t)) if t == "none" => (0, 1),
        ("type", Reply::Simple(_)) => (1, 0),
        _ => return,
    };
    if hits > 0 {
        server.obs.keyspace_hits.fetch_add(hits, Ordering::Relaxed);
    }
    if misses > 0 {
        server
            .obs
            .keyspace_misses
            .fetch_add(misses, Ordering::Relaxed);
    }
}

/// How often the instantaneous rates are sampled (Redis: 100 ms).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Samples the instantaneous rates and the memory peak until `stop` fires.
pub async fn run_sampler(
    server: std::sync::Arc<ServerState>,
    stop: tokio_util::sync::CancellationToken,
) {
    let start = Instant::now();
    let mut ticks: u64 = 0;
    // The baseline, so commands run before the first tick count too.
    server
        .obs
        .sample(1, server.stats.commands_processed.load(Ordering::Relaxed));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
        let now_ms = start.elapsed().as_millis() as u64 + 1;
        server.obs.sample(
            now_ms,
            server.stats.commands_processed.load(Ordering::Relaxed),
        );
        ticks += 1;
        if ticks.is_multiple_of(10) {
            server.obs.memory_now();
        }
    }
}
