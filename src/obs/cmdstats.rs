//! INFO `commandstats` and `errorstats`: calls and time per command, error
//! replies per error code, as Redis counts them.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Redis stops tracking new error codes past this many (a client that
/// makes up error codes cannot grow the table without bound).
pub const MAX_ERROR_CODES: usize = 128;

/// One command's counters.
#[derive(Debug, Default)]
pub struct CmdStat {
    /// Times it ran (failed runs included, rejected ones not).
    pub calls: AtomicU64,
    /// Microseconds spent running it.
    pub usec: AtomicU64,
    /// Refused before running (arity, NOAUTH).
    pub rejected: AtomicU64,
    /// Ran and answered an error.
    pub failed: AtomicU64,
}

/// Per-command and per-error-code counters.
#[derive(Debug)]
pub struct CommandStats {
    per_command: Vec<CmdStat>,
    errors: Mutex<BTreeMap<String, u64>>,
}

/// The error code of an error reply text: its first word (`ERR`,
/// `WRONGTYPE`, `NOAUTH`, ...).
pub fn error_code(text: &str) -> &str {
    text.split(' ').next().unwrap_or("ERR")
}

impl CommandStats {
    /// Counters for `commands` commands (indexed like the command table).
    pub fn new(commands: usize) -> Self {
        Self {
            per_command: (0..commands).map(|_| CmdStat::default()).collect(),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    /// One run of command `idx` that took `usec`.
    #[inline]
    pub fn record_call(&self, idx: usize, usec: u64, failed: bool) {
        if let Some(s) = self.per_command.get(idx) {
            s.calls.fetch_add(1, Ordering::Relaxed);
            s.usec.fetch_add(usec, Ordering::Relaxed);
            if failed {
                s.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Command `idx` refused before it ran.
    pub fn record_rejected(&self, idx: usize) {
        if let Some(s) = self.per_command.get(idx) {
            s.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One error reply whose text is `text`.
    pub fn record_error(&self, text: &str) {
        let code = error_code(text);
        let mut errors = self.errors.lock();
        if let Some(n) = errors.get_mut(code) {
            *n += 1;
        } else if errors.len() < MAX_ERROR_CODES {
            errors.insert(code.to_string(), 1);
        }
    }

    /// `cmdstat_<name>` lines for every command that was called, failed or
    /// was rejected (`names` indexed like the counters).
    pub fn commandstats(&self, names: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (s, name) in self.per_command.iter().zip(names) {
            let calls = s.calls.load(Ordering::Relaxed);
            let usec = s.usec.load(Ordering::Relaxed);
            let rejected = s.rejected.load(Ordering::Relaxed);
            let failed = s.failed.load(Ordering::Relaxed);
            if calls == 0 && rejected == 0 && failed == 0 {
                continue;
            }
            let per_call = if calls == 0 {
                0.0
            } else {
                usec as f64 / calls as f64
            };
            out.push((
                format!("cmdstat_{name}"),
                format!(
                    "calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}"
                ),
            ));
        }
        out
    }

    /// `errorstat_<CODE>` lines.
    pub fn errorstats(&self) -> Vec<(String, String)> {
        self.errors
            .lock()
            .iter()
            .map(|(code, n)| (format!("errorstat_{code}"), format!("count={n}")))
            .collect()
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for s in &self.per_command {
            for c in [&s.calls, &s.usec, &s.rejected, &s.failed] {
                c.store(0, Ordering::Relaxed);
            }
        }
        self.errors.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_redis() {
        let s = CommandStats::new(2);
        s.record_call(0, 10, false);
        s.record_call(0, 5, true);
        s.record_rejected(0);
        s.record_error("ERR wrong number of arguments");
        s.record_error("WRONGTYPE Operation");
        s.record_error("ERR x");
        assert_eq!(
            s.commandstats(&["get", "set"]),
            vec![(
                "cmdstat_get".to_string(),
                "calls=2,usec=15,usec_per_call=7.50,rejected_calls=1,failed_calls=1".to_string()
            )]
        );
        assert_eq!(
            s.errorstats(),
            vec![
                ("errorstat_ERR".to_string(), "count=2".to_string()),
                ("errorstat_WRONGTYPE".to_string(), "count=1".to_string())
            ]
        );
        s.reset();
        assert!(s.commandstats(&["get", "set"]).is_empty());
        assert!(s.errorstats().is_empty());
    }

    #[test]
    fn error_codes_are_bounded() {
        let s = CommandStats::new(0);
        for i in 0..(MAX_ERROR_CODES + 10) {
            s.record_error(&format!("E{i} x"));
        }
        assert_eq!(s.errorstats().len(), MAX_ERROR_CODES);
    }
}
