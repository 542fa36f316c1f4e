//! A counter whose concurrent increments sum, with a reset that forgets
//! only what it observed (INCR/INCRBY/INCRBYFLOAT keys, sorted-set scores).
//!
//! Each coordinator owns one entry holding the running total of every
//! increment it coordinated; replicas join entries by keeping the one with
//! the higher dot counter. That is only sound because the coordinator
//! builds its new entry on its *own stored copy* (see
//! [`super::Authority::Owner`]), which always holds its latest entry. A
//! coordinator outside the key's preference list has no such copy, so its
//! increments are kept one per write, keyed by the write's dot
//! ([`super::Authority::Detached`]), and never folded.
//!
//! A reset (SET of a score, INCR turning a numeric string into a counter)
//! is a last-writer-wins register that remembers which entries it saw:
//! the value is the reset's base plus whatever was added since.

use super::super::version::{Dot, NodeId};
use super::Authority;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// An integer part and a floating part: INCRBY adds to the first,
/// INCRBYFLOAT to the second, so integer counters stay exact.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Amount {
    /// Sum of integer increments.
    pub int: i64,
    /// Sum of floating increments.
    pub float: f64,
}

impl PartialEq for Amount {
    fn eq(&self, other: &Self) -> bool {
        self.int == other.int && self.float.to_bits() == other.float.to_bits()
    }
}

impl Eq for Amount {}

impl Amount {
    /// An integer amount.
    pub fn int(int: i64) -> Self {
        Amount { int, float: 0.0 }
    }

    /// A floating amount.
    pub fn float(float: f64) -> Self {
        Amount { int: 0, float }
    }

    /// `self + other`, saturating the integer part.
    pub fn plus(self, other: Amount) -> Amount {
        Amount {
            int: self.int.saturating_add(other.int),
            float: self.float + other.float,
        }
    }

    /// `self - other`, saturating the integer part.
    pub fn minus(self, other: Amount) -> Amount {
        Amount {
            int: self.int.saturating_sub(other.int),
            float: self.float - other.float,
        }
    }
}

/// A coordinator's running total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owned {
    /// Counter of the dot of the write that last changed it.
    pub counter: u64,
    /// Everything this coordinator added.
    pub amount: Amount,
}

/// A reset: from here on the value is `base` plus what was added since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset {
    /// When it was written (ms), for last-writer-wins between resets.
    pub timestamp_ms: u64,
    /// The write that made it (the tie-break).
    pub dot: Dot,
    /// The value it set.
    pub base: Amount,
    /// Each coordinator's total as the reset saw it.
    pub observed: BTreeMap<NodeId, Amount>,
    /// The detached increments it saw.
    pub observed_detached: BTreeSet<Dot>,
}

impl Reset {
    fn rank(&self) -> (u64, &Dot) {
        (self.timestamp_ms, &self.dot)
    }
}

/// The replicated counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// One running total per coordinator.
    owned: BTreeMap<NodeId, Owned>,
    /// Increments coordinated outside the preference list, one per write.
    detached: BTreeMap<Dot, Amount>,
    /// The winning reset, if any.
    reset: Option<Reset>,
    /// Whether a floating increment or base was ever applied: the value is
    /// then shown as a float (as Redis keeps INCRBYFLOAT results).
    float_seen: bool,
    /// An increment not yet given a dot (travels to the coordinator).
    pending: Option<Amount>,
    /// A reset not yet given a dot.
    pending_reset: Option<Amount>,
}

impl Counter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter about to be reset to `base` (applied when stamped).
    pub fn with_base(base: Amount) -> Self {
        let mut c = Counter::new();
        c.set(base);
        c
    }

    /// Queues a reset to `base`: increments this state has seen no longer
    /// count; concurrent ones still do.
    pub fn set(&mut self, base: Amount) {
        self.float_seen |= base.float != 0.0;
        self.pending = None;
        self.pending_reset = Some(base);
    }

    /// Queues an increment.
    pub fn add(&mut self, by: Amount) {
        self.float_seen |= by.float != 0.0;
        self.pending = Some(self.pending.unwrap_or_default().plus(by));
    }

    /// Marks the counter as floating (INCRBYFLOAT by 0 still makes it one).
    pub fn mark_float(&mut self) {
        self.float_seen = true;
    }

    /// Whether the value is shown as a float.
    pub fn is_float(&self) -> bool {
        self.float_seen
    }

    /// The current value, queued changes included.
    pub fn value(&self) -> Amount {
        let since = |node: &NodeId, o: &Owned| match &self.reset {
            Some(r) => o
                .amount
                .minus(r.observed.get(node).copied().unwrap_or_default()),
            None => o.amount,
        };
        let settled = match (&self.pending_reset, &self.reset) {
            (Some(base), _) => *base,
            (None, reset) => {
                let mut total = reset.as_ref().map(|r| r.base).unwrap_or_default();
                for (node, o) in &self.owned {
                    total = total.plus(since(node, o));
                }
                for (dot, a) in &self.detached {
                    let seen = reset
                        .as_ref()
                        .is_some_and(|r| r.observed_detached.contains(dot));
                    if !seen {
                        total = total.plus(*a);
                    }
                }
                total
            }
        };
        settled.plus(self.pending.unwrap_or_default())
    }

    /// The value as one float.
    pub fn value_f64(&self) -> f64 {
        let v = self.value();
        v.int as f64 + v.float
    }

    /// Joins another replica's state (commutative, associative, idempotent).
    pub fn merge(&mut self, other: &Counter) {
        for (node, theirs) in &other.owned {
            let take = self
                .owned
                .get(node)
                .is_none_or(|ours| theirs.counter > ours.counter);
            if take {
                self.owned.insert(node.clone(), *theirs);
            }
        }
        for (dot, a) in &other.detached {
            self.detached.entry(dot.clone()).or_insert(*a);
        }
        let replace = match (&self.reset, &other.reset) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(ours), Some(theirs)) => theirs.rank() > ours.rank(),
        };
        if replace {
            self.reset = other.reset.clone();
        }
        self.float_seen |= other.float_seen;
    }

    /// The newest own entry of `node` among `states` (a coordinator's
    /// stored siblings).
    pub fn own_entry<'a>(states: impl Iterator<Item = &'a Counter>, node: &NodeId) -> Owned {
        states
            .filter_map(|c| c.owned.get(node))
            .max_by_key(|o| o.counter)
            .copied()
            .unwrap_or_default()
    }

    /// Turns queued changes into the write `dot` at `now_ms`. `stored_own`
    /// is the coordinator's own entry in its stored copy (owners only).
    pub fn stamp(&mut self, dot: &Dot, now_ms: u64, authority: Authority, stored_own: Owned) {
        let own = match self.owned.get(&dot.node) {
            Some(o) if o.counter > stored_own.counter => *o,
            _ => stored_own,
        };
        if let Some(base) = self.pending_reset.take() {
            let mut observed: BTreeMap<NodeId, Amount> = self
                .owned
                .iter()
                .map(|(n, o)| (n.clone(), o.amount))
                .collect();
            if authority == Authority::Owner {
                observed.insert(dot.node.clone(), own.amount);
            }
            self.reset = Some(Reset {
                timestamp_ms: now_ms,
                dot: dot.clone(),
                base,
                observed,
                observed_detached: self.detached.keys().cloned().collect(),
            });
        }
        if let Some(by) = self.pending.take() {
            match authority {
                Authority::Owner => {
                    self.owned.insert(
                        dot.node.clone(),
                        Owned {
                            counter: dot.counter,
                            amount: own.amount.plus(by),
                        },
                    );
                }
                Authority::Detached => {
                    self.detached.insert(dot.clone(), by);
                }
            }
        }
    }

    /// Rough stored size in bytes (MEMORY USAGE, transfer allowances).
    pub fn approx_len(&self) -> usize {
        32 + self.owned.len() * 48
            + self.detached.len() * 48
            + self
                .reset
                .as_ref()
                .map_or(0, |r| 64 + r.observed.len() * 40)
    }
}

/// Formats a float the way Redis prints INCRBYFLOAT results: shortest
/// round-trip form, no exponent, no trailing `.0`.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Redis adds in long double and prints 17 digits, so 0.1 + 0.2 shows as
    // 0.3. Rounding the f64 sum to 15 significant digits (all an f64 holds
    // exactly) before printing gives the same text for everyday values.
    let rounded = format!("{d:.14e}").parse::<f64>().unwrap_or(d);
    let s = format!("{rounded}");
    match s.strip_suffix(".0") {
        Some(int) => int.to_string(),
        None => s,
    }
}

impl Counter {
    /// The value as GET shows it: an integer, or Redis's float text once
    /// a floating increment touched it.
    pub fn render(&self) -> String {
        let v = self.value();
        if self.float_seen {
            format_double(v.int as f64 + v.float)
        } else {
            v.int.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(n: &str, c: u64) -> Dot {
        Dot {
            node: NodeId::new(n),
            counter: c,
        }
    }

    fn stamped(mut c: Counter, d: Dot, now: u64) -> Counter {
        let own = c.owned.get(&d.node).copied().unwrap_or_default();
        c.stamp(&d, now, Authority::Owner, own);
        c
    }

    #[test]
    fn concurrent_increments_sum() {
        let mut a = Counter::new();
        a.add(Amount::int(2));
        let a = stamped(a, dot("a", 1), 1);
        let mut b = Counter::new();
        b.add(Amount::int(3));
        let b = stamped(b, dot("b", 1), 1);
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.value(), Amount::int(5));
    }

    #[test]
    fn reset_forgets_only_what_it_saw() {
        let mut base = Counter::new();
        base.add(Amount::int(10));
        let base = stamped(base, dot("a", 1), 1);
        let mut reset = base.clone();
        reset.set(Amount::int(100));
        let reset = stamped(reset, dot("b", 2), 2);
        let mut inc = base.clone();
        inc.add(Amount::int(1));
        let inc = stamped(inc, dot("c", 2), 2);
        let mut m = reset.clone();
        m.merge(&inc);
        assert_eq!(m.value(), Amount::int(101));
    }
}
