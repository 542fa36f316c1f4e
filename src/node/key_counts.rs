//! Live and expiring key counts per database (DBSIZE, INFO keyspace),
//! kept as writes land instead of counted on demand.

use crate::core::{MAX_DATABASES, split_db_key};
use std::sync::atomic::{AtomicI64, Ordering};

/// Per-database counters of one node's stored keys.
#[derive(Debug)]
pub struct KeyCounts {
    live: [AtomicI64; MAX_DATABASES],
    expiring: [AtomicI64; MAX_DATABASES],
}

impl Default for KeyCounts {
    fn default() -> Self {
        Self {
            live: std::array::from_fn(|_| AtomicI64::new(0)),
            expiring: std::array::from_fn(|_| AtomicI64::new(0)),
        }
    }
}

/// The database a stored key belongs to, as a counter index.
pub fn db_index(stored_key: &[u8]) -> usize {
    usize::from(split_db_key(stored_key).0).min(MAX_DATABASES - 1)
}

impl KeyCounts {
    /// Adds `delta` live keys to database `db`.
    pub fn add_live(&self, db: usize, delta: i64) {
        if delta != 0 {
            self.live[db].fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// Adds `delta` expiring keys to database `db`.
    pub fn add_expiring(&self, db: usize, delta: i64) {
        if delta != 0 {
            self.expiring[db].fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// Live keys of database `db`.
    pub fn live_in(&self, db: usize) -> u64 {
        self.live
            .get(db)
            .map_or(0, |c| c.load(Ordering::Relaxed).max(0) as u64)
    }

    /// Expiring keys of database `db`.
    pub fn expiring_in(&self, db: usize) -> u64 {
        self.expiring
            .get(db)
            .map_or(0, |c| c.load(Ordering::Relaxed).max(0) as u64)
    }

    /// Live keys of every database.
    pub fn live_total(&self) -> u64 {
        (0..MAX_DATABASES).map(|db| self.live_in(db)).sum()
    }

    /// Expiring keys of every database.
    pub fn expiring_total(&self) -> u64 {
        (0..MAX_DATABASES).map(|db| self.expiring_in(db)).sum()
    }

    /// Forgets every key (the store was cleared).
    pub fn clear(&self) {
        for c in self.live.iter().chain(&self.expiring) {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Forgets database `db`'s keys.
    pub fn clear_db(&self, db: usize) {
        if let (Some(l), Some(e)) = (self.live.get(db), self.expiring.get(db)) {
            l.store(0, Ordering::Relaxed);
            e.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::db_key;

    #[test]
    fn counts_are_kept_per_database() {
        let counts = KeyCounts::default();
        counts.add_live(db_index(b"a"), 1);
        counts.add_live(db_index(&db_key(2, b"a")), 1);
        counts.add_live(db_index(&db_key(2, b"b")), 1);
        counts.add_expiring(db_index(&db_key(2, b"b")), 1);
        assert_eq!(counts.live_in(0), 1);
        assert_eq!(counts.live_in(2), 2);
        assert_eq!(counts.expiring_in(2), 1);
        assert_eq!(counts.live_total(), 3);
        counts.clear_db(2);
        assert_eq!(counts.live_total(), 1);
        counts.clear();
        assert_eq!(counts.live_total(), 0);
    }
}
