//! Slows down password guessing. After a wrong password, its source
//! address is locked for a while (10 ms, doubling with each further failure
//! up to 1 s): the WRONGPASS reply itself comes when the lock ends, and any
//! other AUTH from that address meanwhile is refused without its password
//! being looked at (that reply, too, comes when the lock ends, so refused
//! clients cannot spin). So one address gets at most one password checked
//! per lock, however many connections it opens, and a client that waits
//! for each reply is simply paced, never refused.
//!
//! Only AUTH is affected: other commands from that address, and all other
//! addresses, are not slowed. A right password, or [`FORGET_AFTER`] without
//! failures, clears the address's record.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Lock after the first failure.
pub const FIRST_LOCK: Duration = Duration::from_millis(10);
/// Longest lock.
pub const MAX_LOCK: Duration = Duration::from_secs(1);
/// An address without failures for this long starts afresh.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Addresses tracked at most (bounds memory under a flood from many).
const MAX_TRACKED: usize = 10_000;

/// Whether an AUTH attempt's password may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check it now.
    Now,
    /// The address is locked for this much longer: refuse without
    /// checking (after that long).
    Refused(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    /// Failures in a row.
    streak: u32,
    /// The address is locked until then.
    locked_until: Instant,
    last_failure: Instant,
}

/// The lock after `streak` failures in a row.
pub fn lock_for(streak: u32) -> Duration {
    let doublings = streak.saturating_sub(1).min(16);
    (FIRST_LOCK * 2u32.pow(doublings)).min(MAX_LOCK)
}

/// Failed-AUTH records per source address.
#[derive(Debug, Default)]
pub struct AuthLimiter {
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl AuthLimiter {
    /// An attempt from `ip` at `now`.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Admission {
        let mut records = self.records.lock();
        let Some(record) = records.get(&ip) else {
            return Admission::Now;
        };
        if now.saturating_duration_since(record.last_failure) >= FORGET_AFTER {
            records.remove(&ip);
            return Admission::Now;
        }
        if now < record.locked_until {
            Admission::Refused(record.locked_until - now)
        } else {
            // Checked now: lock the address while this one is checked and
            // answered, so concurrent attempts cannot slip in beside it.
            if let Some(r) = records.get_mut(&ip) {
                r.locked_until = now + lock_for(r.streak);
            }
            Admission::Now
        }
    }

    /// A wrong password from `ip` at `now`: locks the address and returns
    /// how long to hold the reply (until the lock ends).
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut records = self.records.lock();
        if records.len() >= MAX_TRACKED && !records.contains_key(&ip) {
            records.retain(|_, r| now.saturating_duration_since(r.last_failure) < FORGET_AFTER);
            if records.len() >= MAX_TRACKED {
                return MAX_LOCK;
            }
        }
        let record = records.entry(ip).or_insert(Record {
            streak: 0,
            locked_until: now,
            last_failure: now,
        });
        record.streak = record.streak.saturating_add(1);
        record.last_failure = now;
        let lock = lock_for(record.streak);
        record.locked_until = now + lock;
        lock
    }

    /// A right password from `ip`.
    pub fn succeeded(&self, ip: IpAddr) {
        self.records.lock().remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn no_failures_no_lock() {
        let l = AuthLimiter::default();
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(l.admit(ip(1), now), Admission::Now);
        }
    }

    #[test]
    fn a_patient_client_is_paced_and_a_flood_is_refused() {
        let l = AuthLimiter::default();
        let t0 = Instant::now();
        // A client that waits for each reply before the next guess.
        let mut now = t0;
        let mut checked = 0;
        while now < t0 + Duration::from_secs(10) {
            assert_eq!(l.admit(ip(1), now), Admission::Now, "never refused");
            checked += 1;
            now += l.failed(ip(1), now);
        }
        assert!(checked <= 20, "{checked} guesses checked in 10 s");
        // Many attempts at once: at most one is checked.
        let burst: Vec<Admission> = (0..100).map(|_| l.admit(ip(1), now)).collect();
        let checked = burst.iter().filter(|a| **a == Admission::Now).count();
        assert!(burst.iter().all(|a| match a {
            Admission::Refused(d) => *d <= MAX_LOCK,
            Admission::Now => true,
        }));
        assert!(checked <= 1, "{checked} of 100 checked");
        // Another address is not affected.
        assert_eq!(l.admit(ip(2), now), Admission::Now);
        // A success clears the record.
        l.succeeded(ip(1));
        assert_eq!(l.admit(ip(1), now), Admission::Now);
    }

    #[test]
    fn failures_are_forgotten() {
        let l = AuthLimiter::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            l.failed(ip(1), t0);
        }
        assert_eq!(l.admit(ip(1), t0), Admission::Refused(MAX_LOCK));
        assert_eq!(l.admit(ip(1), t0 + FORGET_AFTER), Admission::Now);
    }
}
