//! SLOWLOG: the last `slowlog-max-len` commands that took at least
//! `slowlog-log-slower-than` microseconds, with Redis's argument trimming.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Redis's default `slowlog-log-slower-than` (µs).
pub const DEFAULT_SLOWER_THAN_US: i64 = 10_000;
/// Redis's default `slowlog-max-len`.
pub const DEFAULT_MAX_LEN: usize = 128;
/// Arguments kept per entry; the rest become one "... (N more arguments)".
pub const MAX_ARGC: usize = 32;
/// Bytes kept per argument; the rest become "... (N more bytes)".
pub const MAX_ARG_LEN: usize = 128;

/// One logged command.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Unique, increasing.
    pub id: u64,
    /// Unix time (s) when it was logged.
    pub timestamp: u64,
    /// Execution time (µs).
    pub duration_us: u64,
    /// Trimmed, redacted arguments.
    pub args: Vec<Bytes>,
    /// Client `ip:port`.
    pub client_addr: String,
    /// CLIENT SETNAME name (empty when unset).
    pub client_name: String,
}

/// The log and its two settings.
#[derive(Debug)]
pub struct SlowLog {
    entries: Mutex<VecDeque<Entry>>,
    next_id: AtomicU64,
    slower_than_us: AtomicI64,
    max_len: AtomicUsize,
}

impl Default for SlowLog {
    fn default() -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
            slower_than_us: AtomicI64::new(DEFAULT_SLOWER_THAN_US),
            max_len: AtomicUsize::new(DEFAULT_MAX_LEN),
        }
    }
}

/// Redis's trimming of a logged command line (after redaction).
pub fn trim_args(args: &[Bytes]) -> Vec<Bytes> {
    let kept = if args.len() > MAX_ARGC {
        MAX_ARGC - 1
    } else {
        args.len()
    };
    let mut out: Vec<Bytes> = args[..kept]
        .iter()
        .map(|a| {
            if a.len() > MAX_ARG_LEN {
                let mut s = a[..MAX_ARG_LEN].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_LEN).as_bytes(),
                );
                Bytes::from(s)
            } else {
                a.clone()
            }
        })
        .collect();
    if args.len() > MAX_ARGC {
        out.push(Bytes::from(format!(
            "... ({} more arguments)",
            args.len() - kept
        )));
    }
    out
}

impl SlowLog {
    /// `slowlog-log-slower-than` (negative = off, 0 = log everything).
    pub fn slower_than_us(&self) -> i64 {
        self.slower_than_us.load(Ordering::Relaxed)
    }

    /// CONFIG SET slowlog-log-slower-than.
    pub fn set_slower_than_us(&self, us: i64) {
        self.slower_than_us.store(us, Ordering::Relaxed);
    }

    /// `slowlog-max-len`.
    pub fn max_len(&self) -> usize {
        self.max_len.load(Ordering::Relaxed)
    }

    /// CONFIG SET slowlog-max-len: shortens the log at once.
    pub fn set_max_len(&self, len: usize) {
        self.max_len.store(len, Ordering::Relaxed);
        let mut entries = self.entries.lock();
        entries.truncate(len);
    }

    /// Whether a command that took `us` is logged (checked on every command:
    /// one atomic load).
    #[inline]
    pub fn is_slow(&self, us: u64) -> bool {
        let t = self.slower_than_us();
        t >= 0 && us >= t as u64
    }

    /// Logs a command (already redacted).
    pub fn push(
        &self,
        args: &[Bytes],
        duration_us: u64,
        now_secs: u64,
        addr: String,
        name: String,
    ) {
        let max = self.max_len();
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            timestamp: now_secs,
            duration_us,
            args: trim_args(args),
            client_addr: addr,
            client_name: name,
        };
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max);
    }

    /// The newest `n` entries (all for `None`), newest first.
    pub fn get(&self, n: Option<usize>) -> Vec<Entry> {
        let entries = self.entries.lock();
        let n = n.unwrap_or(entries.len());
        entries.iter().take(n).cloned().collect()
    }

    /// SLOWLOG LEN.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// True when nothing is logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// SLOWLOG RESET.
    pub fn reset(&self) {
        self.entries.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_like_redis() {
        let many: Vec<Bytes> = (0..40).map(|i| Bytes::from(i.to_string())).collect();
        let t = trim_args(&many);
        assert_eq!(t.len(), 32);
        assert_eq!(t[31], Bytes::from("... (9 more arguments)"));
        let long = vec![Bytes::from(vec![b'a'; 130])];
        let t = trim_args(&long);
        assert_eq!(t[0].len(), 128 + "... (2 more bytes)".len());
        assert!(t[0].ends_with(b"... (2 more bytes)"));
    }

    #[test]
    fn keeps_newest_max_len() {
        let log = SlowLog::default();
        log.set_max_len(2);
        for i in 0..3u64 {
            log.push(&[Bytes::from("get")], i, 0, String::new(), String::new());
        }
        let got = log.get(None);
        assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2, 1]);
        assert!(log.is_slow(10_000) && !log.is_slow(9_999));
        log.set_slower_than_us(-1);
        assert!(!log.is_slow(u64::MAX));
    }
}
