//! Logging that stays readable under pressure: one line per event, repeated
//! events rate-limited ([`RateLimit`]), and a panic hook that prints one
//! line (a backtrace only when `RUST_BACKTRACE` asks for it).
//!
//! A server under attack or out of descriptors hits the same failure many
//! times a second; logging each one buries everything else and can fill the
//! disk. The first occurrence is logged, the rest are counted and reported
//! with the next line that gets through.

use parking_lot::Mutex;
use std::fmt;
use std::time::{Duration, Instant};

/// How long a rate-limited event stays quiet after it was logged.
pub const QUIET_WINDOW: Duration = Duration::from_secs(10);

/// Decides whether one more occurrence of an event is logged.
///
/// Pure state: the caller passes the time, so the rule is testable without
/// a clock. [`RateLimit`] wraps it for shared use.
#[derive(Debug, Clone)]
pub struct Limiter {
    window: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl Limiter {
    /// At most one line per `window`.
    pub const fn new(window: Duration) -> Self {
        Self {
            window,
            last_logged: None,
            suppressed: 0,
        }
    }

    /// One occurrence at `now`: `Some` (with what was suppressed since the
    /// last logged line) if it should be logged, `None` if it is counted.
    pub fn check(&mut self, now: Instant) -> Option<Suppressed> {
        let due = self
            .last_logged
            .is_none_or(|at| now.saturating_duration_since(at) >= self.window);
        if !due {
            self.suppressed += 1;
            return None;
        }
        let since = self.last_logged.map(|at| now.saturating_duration_since(at));
        self.last_logged = Some(now);
        Some(Suppressed {
            count: std::mem::take(&mut self.suppressed),
            over: since.unwrap_or(self.window),
        })
    }
}

/// What a logged line stands for besides itself; its `Display` is the
/// suffix to append (empty when nothing was suppressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    /// Occurrences not logged since the previous line.
    pub count: u64,
    /// Time since the previous line.
    pub over: Duration,
}

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count > 0 {
            write!(
                f,
                " ({} more in the last {} s)",
                self.count,
                self.over.as_secs().max(1)
            )?;
        }
        Ok(())
    }
}

/// A [`Limiter`] that can live in a `static` and be hit from any thread:
///
/// ```
/// use dynkv::logging::RateLimit;
/// static ACCEPT_FAILED: RateLimit = RateLimit::new();
/// if let Some(more) = ACCEPT_FAILED.check() {
///     eprintln!("accept failed{more}");
/// }
/// ```
#[derive(Debug)]
pub struct RateLimit(Mutex<Limiter>);

impl RateLimit {
    /// At most one line per [`QUIET_WINDOW`].
    pub const fn new() -> Self {
        Self(Mutex::new(Limiter::new(QUIET_WINDOW)))
    }

    /// One occurrence now; see [`Limiter::check`].
    pub fn check(&self) -> Option<Suppressed> {
        self.0.lock().check(Instant::now())
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// Panics are logged through this, so a panic in every request does not
/// become a line (or a backtrace) per request.
static PANICS: RateLimit = RateLimit::new();

/// Starts logging to stderr (filter from `RUST_LOG`, default `info`) and
/// installs the one-line panic hook.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    std::panic::set_hook(Box::new(|info| {
        let Some(more) = PANICS.check() else {
            return;
        };
        let thread = std::thread::current();
        let line = panic_line(
            thread.name().unwrap_or("unnamed"),
            info.location().map(|l| (l.file(), l.line(), l.column())),
            panic_message(info.payload()),
        );
        // `capture` honours RUST_BACKTRACE / RUST_LIB_BACKTRACE and is a
        // no-op unless they ask for one.
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!("{line}{more}\n{backtrace}");
        } else {
            tracing::error!("{line}{more}");
        }
    }));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

/// `panic in thread 'x' at src/a.rs:1:2: message`, on one line.
pub fn panic_line(thread: &str, location: Option<(&str, u32, u32)>, message: &str) -> String {
    let at = location.map_or_else(
        || "unknown location".to_string(),
        |(file, line, col)| format!("{file}:{line}:{col}"),
    );
    let message = message.replace(['\r', '\n'], " ");
    format!("panic in thread '{thread}' at {at}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrence_logged_then_counted_until_the_window_passes() {
        let mut l = Limiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let first = l.check(t0).expect("first occurrence is logged");
        assert_eq!(first.count, 0);
        assert_eq!(first.to_string(), "");
        for i in 1..=200u64 {
            assert!(l.check(t0 + Duration::from_millis(i * 45)).is_none());
        }
        let next = l
            .check(t0 + Duration::from_secs(10))
            .expect("logged again after the window");
        assert_eq!(next.count, 200);
        assert_eq!(next.to_string(), " (200 more in the last 10 s)");
        assert!(l.check(t0 + Duration::from_secs(11)).is_none());
    }

    #[test]
    fn panic_line_is_one_line() {
        let line = panic_line("w", Some(("src/x.rs", 3, 9)), "bad\nthing\r\n");
        assert_eq!(line, "panic in thread 'w' at src/x.rs:3:9: bad thing  ");
        assert!(!line.contains('\n'));
    }
}
