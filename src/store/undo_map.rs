//! [`UndoMap`]: the crash model of the in-memory stores. A `BTreeMap` that
//! remembers, for every key changed since the last sync, the value that
//! was durable then, so a simulated crash can put it back.
//!
//! Deterministic on purpose (the simulation replays runs from a seed): no
//! hashing, no threads, no clocks.

use std::collections::BTreeMap;

/// A map whose changes become durable at [`UndoMap::sync`] (or at once).
#[derive(Debug)]
pub struct UndoMap<K, V> {
    live: BTreeMap<K, V>,
    /// Durable value (`None`: absent) of each key changed since the last
    /// sync. Always empty when writes are durable at once.
    undo: BTreeMap<K, Option<V>>,
    durable_at_once: bool,
}

impl<K: Ord + Clone, V: Clone> UndoMap<K, V> {
    /// An empty map; with `durable_at_once` every change survives a crash
    /// (`--fsync always`), otherwise only those followed by a sync.
    pub fn new(durable_at_once: bool) -> Self {
        Self {
            live: BTreeMap::new(),
            undo: BTreeMap::new(),
            durable_at_once,
        }
    }

    /// The current contents.
    pub fn live(&self) -> &BTreeMap<K, V> {
        &self.live
    }

    /// Sets `key`.
    pub fn insert(&mut self, key: K, value: V) {
        self.remember(&key);
        self.live.insert(key, value);
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) {
        if self.live.contains_key(key) {
            self.remember(key);
            self.live.remove(key);
        }
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        let keys: Vec<K> = self.live.keys().cloned().collect();
        for key in &keys {
            self.remember(key);
        }
        self.live.clear();
    }

    /// Makes every change so far durable.
    pub fn sync(&mut self) {
        self.undo.clear();
    }

    /// Loses every change since the last sync, as a crash would.
    pub fn crash(&mut self) {
        for (key, durable) in std::mem::take(&mut self.undo) {
            match durable {
                Some(value) => self.live.insert(key, value),
                None => self.live.remove(&key),
            };
        }
    }

    fn remember(&mut self, key: &K) {
        if !self.durable_at_once && !self.undo.contains_key(key) {
            self.undo.insert(key.clone(), self.live.get(key).cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_restores_the_last_synced_state() {
        let mut map = UndoMap::new(false);
        map.insert(1, "a");
        map.insert(2, "b");
        map.sync();
        map.insert(1, "a2");
        map.insert(1, "a3");
        map.remove(&2);
        map.insert(3, "c");
        map.crash();
        assert_eq!(map.live(), &BTreeMap::from([(1, "a"), (2, "b")]));
        map.clear();
        map.crash();
        assert_eq!(map.live(), &BTreeMap::from([(1, "a"), (2, "b")]));
    }

    #[test]
    fn durable_at_once_loses_nothing() {
        let mut map = UndoMap::new(true);
        map.insert(1, "a");
        map.remove(&1);
        map.insert(2, "b");
        map.crash();
        assert_eq!(map.live(), &BTreeMap::from([(2, "b")]));
    }
}
