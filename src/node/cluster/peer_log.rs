//! When to log a peer going down or coming back.
//!
//! The failure detector changes a peer's state on every answer or miss; a
//! peer that half-works (overloaded, out of descriptors) flips each gossip
//! round, and logging each flip buries the log. A change is logged at once
//! if the peer's previous line is older than the quiet window; otherwise it
//! is counted, and [`PeerLog::settle`] (called every gossip round) logs the
//! state the peer settled in, with how often it changed meanwhile. So the
//! last line about a peer always tells its current state, at most one
//! window late.

use crate::core::NodeId;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A line to log about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEvent {
    /// The peer.
    pub peer: NodeId,
    /// Its state now.
    pub up: bool,
    /// Changes not logged since its previous line.
    pub unlogged_changes: u32,
}

impl PeerEvent {
    /// Logs this event as one line.
    pub fn log(&self, window: Duration) {
        let flaps = if self.unlogged_changes > 0 {
            format!(
                " ({} state changes in the last {} s)",
                self.unlogged_changes,
                window.as_secs()
            )
        } else {
            String::new()
        };
        if self.up {
            tracing::info!(peer = %self.peer, "peer is reachable again{flaps}");
        } else {
            tracing::warn!(peer = %self.peer, "peer unreachable; routing around it{flaps}");
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    logged_at: Instant,
    up: bool,
    unlogged_changes: u32,
}

/// Per-peer logging state.
#[derive(Debug, Clone)]
pub struct PeerLog {
    window: Duration,
    peers: BTreeMap<NodeId, Entry>,
}

impl PeerLog {
    /// At most one line per peer per `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            peers: BTreeMap::new(),
        }
    }

    /// The quiet window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// `peer` went up or down at `now`; returns the line to log, if any.
    pub fn change(&mut self, peer: &NodeId, up: bool, now: Instant) -> Option<PeerEvent> {
        let window = self.window;
        let Some(entry) = self.peers.get_mut(peer) else {
            self.peers.insert(
                peer.clone(),
                Entry {
                    logged_at: now,
                    up,
                    unlogged_changes: 0,
                },
            );
            return Some(PeerEvent {
                peer: peer.clone(),
                up,
                unlogged_changes: 0,
            });
        };
        entry.up = up;
        if now.saturating_duration_since(entry.logged_at) < window {
            entry.unlogged_changes += 1;
            return None;
        }
        Some(Self::logged(peer, entry, now))
    }

    /// Lines for peers whose changes were held back and whose window has
    /// passed: their current state, with the count.
    pub fn settle(&mut self, now: Instant) -> Vec<PeerEvent> {
        let window = self.window;
        self.peers
            .iter_mut()
            .filter(|(_, e)| {
                e.unlogged_changes > 0 && now.saturating_duration_since(e.logged_at) >= window
            })
            .map(|(peer, entry)| Self::logged(peer, entry, now))
            .collect()
    }

    fn logged(peer: &NodeId, entry: &mut Entry, now: Instant) -> PeerEvent {
        let unlogged_changes = std::mem::take(&mut entry.unlogged_changes);
        entry.logged_at = now;
        PeerEvent {
            peer: peer.clone(),
            up: entry.up,
            unlogged_changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_real_change_is_logged_once() {
        let mut log = PeerLog::new(Duration::from_secs(10));
        let p = NodeId::new("p");
        let t0 = Instant::now();
        let down = log.change(&p, false, t0).expect("first change logged");
        assert!(!down.up);
        assert!(log.settle(t0 + Duration::from_secs(30)).is_empty());
        let up = log
            .change(&p, true, t0 + Duration::from_secs(30))
            .expect("a change after the window is logged at once");
        assert!(up.up);
        assert_eq!(up.unlogged_changes, 0);
    }

    #[test]
    fn flapping_gives_one_line_per_window_ending_with_the_current_state() {
        let mut log = PeerLog::new(Duration::from_secs(10));
        let p = NodeId::new("p");
        let t0 = Instant::now();
        let mut lines = Vec::new();
        lines.extend(log.change(&p, false, t0));
        // Flips every second for 25 s, settling up.
        for s in 1..=25u64 {
            let now = t0 + Duration::from_secs(s);
            lines.extend(log.change(&p, s % 2 == 0, now));
            lines.extend(log.settle(now));
        }
        for s in 26..=40u64 {
            lines.extend(log.settle(t0 + Duration::from_secs(s)));
        }
        assert!(lines.len() <= 4, "{lines:?}");
        let last = lines.last().expect("lines");
        assert!(!last.up, "25 is odd: the last flip was down");
        assert!(lines.iter().skip(1).all(|l| l.unlogged_changes > 0));
    }
}
