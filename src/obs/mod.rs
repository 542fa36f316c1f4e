//! Observability: the Prometheus endpoint and its metric catalog, and the
//! counters behind INFO, SLOWLOG, LATENCY and MONITOR.
//!
//! The pieces here are plain data structures (no sockets, no clock reads);
//! `crate::resp::observe` feeds them from the request path.

pub mod catalog;
pub mod cmdstats;
pub mod http;
pub mod latency;
pub mod monitor;
pub mod rates;
pub mod slowlog;
pub mod sys;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder, registers every family of
/// [`catalog::FAMILIES`] at zero, and serves `/metrics` on `addr` until
/// `stop` fires. Call before anything records a metric.
pub async fn start_exporter(addr: SocketAddr, stop: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let recorder = PrometheusBuilder::new()
        .set_buckets(catalog::DURATION_BUCKETS)?
        .build_recorder();
    let handle: PrometheusHandle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("a metrics recorder is already installed: {e}"))?;
    catalog::register_all();
    let upkeep = handle.clone();
    let upkeep_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = upkeep_stop.cancelled() => return,
                _ = tokio::time::sleep(UPKEEP_EVERY) => upkeep.run_upkeep(),
            }
        }
    });
    tokio::spawn(http::serve(listener, handle, stop));
    Ok(())
}

/// Counters and logs shared by every connection.
#[derive(Debug)]
pub struct Obs {
    /// INFO commandstats / errorstats.
    pub commands: cmdstats::CommandStats,
    /// SLOWLOG.
    pub slowlog: slowlog::SlowLog,
    /// LATENCY.
    pub latency: latency::LatencyMonitor,
    /// MONITOR clients.
    pub monitors: monitor::Monitors,
    /// instantaneous_* rates.
    pub rates: Mutex<rates::Rates>,
    /// 40 hex characters, new at each process start (INFO run_id).
    pub run_id: String,
    /// Highest resident memory seen (bytes).
    pub peak_memory: AtomicU64,
    /// Reads that found their key.
    pub keyspace_hits: AtomicU64,
    /// Reads that did not.
    pub keyspace_misses: AtomicU64,
    /// Bytes read from clients.
    pub net_input: AtomicU64,
    /// Bytes written to clients.
    pub net_output: AtomicU64,
}

impl Obs {
    /// Fresh counters for a command table of `commands` entries.
    pub fn new(commands: usize) -> Self {
        let id: [u8; 20] = rand::random();
        Self {
            commands: cmdstats::CommandStats::new(commands),
            slowlog: slowlog::SlowLog::default(),
            latency: latency::LatencyMonitor::default(),
            monitors: monitor::Monitors::default(),
            rates: Mutex::new(rates::Rates::default()),
            run_id: hex::encode(id),
            peak_memory: AtomicU64::new(0),
            keyspace_hits: AtomicU64::new(0),
            keyspace_misses: AtomicU64::new(0),
            net_input: AtomicU64::new(0),
            net_output: AtomicU64::new(0),
        }
    }

    /// Current resident memory; raises the peak.
    pub fn memory_now(&self) -> (u64, u64) {
        let rss = sys::rss_bytes();
        let peak = self.peak_memory.fetch_max(rss, Ordering::Relaxed).max(rss);
        (rss, peak)
    }

    /// Samples the rate counters (every 100 ms).
    pub fn sample(&self, now_ms: u64, ops: u64) {
        let mut r = self.rates.lock();
        r.ops.sample(now_ms, ops);
        r.net_in
            .sample(now_ms, self.net_input.load(Ordering::Relaxed));
        r.net_out
            .sample(now_ms, self.net_output.load(Ordering::Relaxed));
    }

    /// CONFIG RESETSTAT (the slow log and latency history are kept, as in
    /// Redis).
    pub fn reset(&self) {
        self.commands.reset();
        for c in [
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.net_input,
            &self.net_output,
            &self.peak_memory,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        let mut r = self.rates.lock();
        r.ops.reset();
        r.net_in.reset();
        r.net_out.reset();
    }
}
