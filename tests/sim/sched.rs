//! The two sources of nondeterminism a real cluster has — time and chance —
//! made explicit: a seeded PRNG and a priority queue of timed events.
//!
//! Both are written out here (a dozen lines each) instead of borrowed from a
//! crate so a seed replays identically whatever dependency versions change.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// SplitMix64: tiny, fast, and good enough to drive a schedule.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

struct Entry<E> {
    time: u64,
    seq: u64,
    event: E,
}

// Ordered by (time, seq) only, reversed so the `BinaryHeap` pops the earliest;
// `seq` makes events scheduled for the same millisecond run in the order they
// were scheduled, which is what makes a run reproducible.
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<E> Eq for Entry<E> {}

/// Simulated time (ms) and the events waiting for it.
pub struct Queue<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
    now: u64,
}

impl<E> Queue<E> {
    pub fn new() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            seq: 0,
            now: 0,
        }
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    /// Schedules `event` at absolute time `at` (never in the past).
    pub fn at(&mut self, at: u64, event: E) {
        self.seq += 1;
        self.heap.push(Entry {
            time: at.max(self.now),
            seq: self.seq,
            event,
        });
    }

    /// Schedules `event` `delay` ms from now.
    pub fn after(&mut self, delay: u64, event: E) {
        self.at(self.now + delay, event);
    }

    /// The next event due no later than `until`, advancing the clock to it;
    /// `None` (with the clock at `until`) when nothing is due.
    pub fn pop_until(&mut self, until: u64) -> Option<E> {
        if self.heap.peek().is_some_and(|e| e.time <= until) {
            let entry = self.heap.pop()?;
            self.now = entry.time;
            Some(entry.event)
        } else {
            self.now = self.now.max(until);
            None
        }
    }
}
