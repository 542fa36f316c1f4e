//! LATENCY: per-event history of latency spikes at or above
//! `latency-monitor-threshold` ms (0 = monitor off, Redis's default).

use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

/// Samples kept per event (Redis's LATENCY_TS_LEN).
pub const HISTORY_LEN: usize = 160;

/// One event's samples: at most one per second (the worst).
#[derive(Clone, Debug, Default)]
pub struct History {
    /// (unix seconds, ms), oldest first.
    pub samples: VecDeque<(u64, u64)>,
    /// Worst ever seen.
    pub max: u64,
}

/// The monitor.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    threshold_ms: AtomicU64,
    events: Mutex<BTreeMap<&'static str, History>>,
}

impl LatencyMonitor {
    /// `latency-monitor-threshold`.
    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    /// CONFIG SET latency-monitor-threshold.
    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether an event that took `ms` is recorded (one atomic load).
    #[inline]
    pub fn is_spike(&self, ms: u64) -> bool {
        let t = self.threshold_ms();
        t > 0 && ms >= t
    }

    /// Records `event` taking `ms` at `now_secs`.
    pub fn record(&self, event: &'static str, now_secs: u64, ms: u64) {
        let mut events = self.events.lock();
        let h = events.entry(event).or_default();
        h.max = h.max.max(ms);
        match h.samples.back_mut() {
            Some((t, worst)) if *t == now_secs => *worst = (*worst).max(ms),
            _ => {
                h.samples.push_back((now_secs, ms));
                if h.samples.len() > HISTORY_LEN {
                    h.samples.pop_front();
                }
            }
        }
    }

    /// LATENCY LATEST: (event, time of latest, latest ms, max ms).
    pub fn latest(&self) -> Vec<(&'static str, u64, u64, u64)> {
        self.events
            .lock()
            .iter()
            .filter_map(|(name, h)| {
                let (t, ms) = *h.samples.back()?;
                Some((*name, t, ms, h.max))
            })
            .collect()
    }

    /// LATENCY HISTORY event.
    pub fn history(&self, event: &str) -> Vec<(u64, u64)> {
        self.events
            .lock()
            .get(event)
            .map(|h| h.samples.iter().copied().collect())
            .unwrap_or_default()
    }

    /// LATENCY RESET [event ...]: how many events were reset.
    pub fn reset(&self, events: &[String]) -> usize {
        let mut all = self.events.lock();
        if events.is_empty() {
            let n = all.len();
            all.clear();
            return n;
        }
        events
            .iter()
            .filter(|e| all.remove(e.as_str()).is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_worst_kept() {
        let m = LatencyMonitor::default();
        assert!(!m.is_spike(1_000_000));
        m.set_threshold_ms(5);
        assert!(m.is_spike(5) && !m.is_spike(4));
        m.record("command", 100, 7);
        m.record("command", 100, 9);
        m.record("command", 101, 6);
        assert_eq!(m.history("command"), vec![(100, 9), (101, 6)]);
        assert_eq!(m.latest(), vec![("command", 101, 6, 9)]);
        assert_eq!(m.reset(&["nope".into()]), 0);
        assert_eq!(m.reset(&[]), 1);
        assert!(m.latest().is_empty());
    }
}
