//! memcached's exptime: 0 never expires, up to 30 days is relative to now,
//! anything larger is a Unix time, and a negative one (or a Unix time
//! already past) is expired at once.

/// The largest exptime memcached reads as relative (30 days).
pub const MAX_RELATIVE_SECS: i64 = 60 * 60 * 24 * 30;

/// When a value stops being readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Never.
    Never,
    /// At this time (ms since the Unix epoch).
    At(u64),
    /// Already: the write is as good as a delete.
    Expired,
}

/// `exptime` as a client sent it, read at `now_ms`.
pub fn resolve_exptime(exptime: i64, now_ms: u64) -> Expiry {
    match exptime {
        0 => Expiry::Never,
        t if t < 0 => Expiry::Expired,
        t if t <= MAX_RELATIVE_SECS => Expiry::At(now_ms.saturating_add(t as u64 * 1000)),
        t => {
            let at = (t as u64).saturating_mul(1000);
            if at <= now_ms {
                Expiry::Expired
            } else {
                Expiry::At(at)
            }
        }
    }
}

/// `exptime` read at `now_ms` as a value's absolute expiry; one already
/// expired is `now_ms`, so the value is gone from the next read on.
pub fn expires_at(exptime: i64, now_ms: u64) -> Option<u64> {
    match resolve_exptime(exptime, now_ms) {
        Expiry::Never => None,
        Expiry::At(at) => Some(at),
        Expiry::Expired => Some(now_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_absolute_and_negative() {
        let now = 1_700_000_000_000;
        assert_eq!(resolve_exptime(0, now), Expiry::Never);
        assert_eq!(resolve_exptime(-1, now), Expiry::Expired);
        assert_eq!(resolve_exptime(10, now), Expiry::At(now + 10_000));
        assert_eq!(
            resolve_exptime(MAX_RELATIVE_SECS, now),
            Expiry::At(now + MAX_RELATIVE_SECS as u64 * 1000)
        );
        // Just over 30 days is a Unix time in 1970: long past.
        assert_eq!(resolve_exptime(MAX_RELATIVE_SECS + 1, now), Expiry::Expired);
        assert_eq!(
            resolve_exptime(1_800_000_000, now),
            Expiry::At(1_800_000_000_000)
        );
    }
}
