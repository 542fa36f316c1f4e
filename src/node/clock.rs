//! The node's hybrid logical clock over its physical [`Clock`].

use super::env::Clock;
use crate::core::hlc::Hlc;
use parking_lot::Mutex;
use std::sync::Arc;

/// Reads "now" for versions, expiries and collection: never below a
/// timestamp this node has seen (see [`crate::core::hlc`]).
pub struct NodeClock {
    physical: Arc<dyn Clock>,
    hlc: Mutex<Hlc>,
}

impl NodeClock {
    /// A clock over `physical` that adopts peers' timestamps at most
    /// `max_offset_ms` ahead.
    pub fn new(physical: Arc<dyn Clock>, max_offset_ms: u64) -> Self {
        Self {
            physical,
            hlc: Mutex::new(Hlc::new(max_offset_ms)),
        }
    }

    /// Hybrid logical time now (ms).
    pub fn now_ms(&self) -> u64 {
        let physical = self.physical.physical_ms();
        self.hlc.lock().now(physical)
    }

    /// The physical clock alone (offset measurement).
    pub fn physical_ms(&self) -> u64 {
        self.physical.physical_ms()
    }

    /// Folds in a timestamp heard from a peer.
    pub fn observe(&self, remote_ms: u64) {
        if remote_ms == 0 {
            return;
        }
        let physical = self.physical.physical_ms();
        self.hlc.lock().observe(remote_ms, physical);
    }
}
