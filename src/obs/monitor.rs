//! MONITOR: every command any client runs, streamed to the clients that
//! asked. With none attached the request path pays one atomic load.

use bytes::Bytes;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Lines a monitor may fall behind by before it is disconnected (Redis
/// closes a monitor that exceeds its output buffer limit the same way).
pub const MONITOR_BACKLOG: usize = 16 * 1024;

/// The attached monitors.
#[derive(Debug, Default)]
pub struct Monitors {
    attached: AtomicUsize,
    senders: Mutex<Vec<mpsc::Sender<Bytes>>>,
}

impl Monitors {
    /// True when at least one monitor is attached.
    #[inline]
    pub fn any(&self) -> bool {
        self.attached.load(Ordering::Relaxed) > 0
    }

    /// Attaches a monitor; its lines arrive on the returned receiver.
    pub fn attach(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(MONITOR_BACKLOG);
        let mut senders = self.senders.lock();
        senders.push(tx);
        self.attached.store(senders.len(), Ordering::Relaxed);
        rx
    }

    /// Sends `line` to every monitor; drops monitors that left or fell
    /// too far behind.
    pub fn feed(&self, line: Bytes) {
        let mut senders = self.senders.lock();
        senders.retain(|tx| tx.try_send(line.clone()).is_ok());
        self.attached.store(senders.len(), Ordering::Relaxed);
    }
}

/// Redis's `sdscatrepr`: a quoted, escaped rendering of one argument.
pub fn repr(arg: &[u8], out: &mut String) {
    out.push('"');
    for &b in arg {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
}

/// One MONITOR line (`+<secs>.<µs> [0 <addr>] "ARG" ...\r\n`); `args` are
/// already redacted.
pub fn format_line(unix_micros: u128, addr: &SocketAddr, args: &[Bytes]) -> Bytes {
    let mut line = format!(
        "+{}.{:06} [0 {}]",
        unix_micros / 1_000_000,
        unix_micros % 1_000_000,
        addr
    );
    for a in args {
        line.push(' ');
        repr(a, &mut line);
    }
    line.push_str("\r\n");
    Bytes::from(line)
}

/// Replaces secrets in a command line before it is shown to anyone
/// (MONITOR, SLOWLOG): AUTH's arguments, HELLO's `AUTH user pass`.
/// Borrowed when there is nothing to hide.
pub fn redact(args: &[Bytes]) -> std::borrow::Cow<'_, [Bytes]> {
    const HIDDEN: Bytes = Bytes::from_static(b"(redacted)");
    let Some(name) = args.first() else {
        return args.into();
    };
    if name.eq_ignore_ascii_case(b"auth") {
        let mut v = vec![name.clone()];
        v.extend(args[1..].iter().map(|_| HIDDEN));
        return v.into();
    }
    if name.eq_ignore_ascii_case(b"hello")
        && let Some(i) = args.iter().position(|a| a.eq_ignore_ascii_case(b"auth"))
    {
        let mut v = args.to_vec();
        for a in v.iter_mut().skip(i + 1).take(2) {
            *a = HIDDEN;
        }
        return v.into();
    }
    args.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_and_escaping() {
        let addr: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let args = [
            Bytes::from("SET"),
            Bytes::from("k"),
            Bytes::from("a\"b\n\x01"),
        ];
        let line = format_line(1_700_000_000_123_456, &addr, &args);
        assert_eq!(
            &line[..],
            &b"+1700000000.123456 [0 127.0.0.1:5000] \"SET\" \"k\" \"a\\\"b\\n\\x01\"\r\n"[..]
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let a = [Bytes::from("AUTH"), Bytes::from("user"), Bytes::from("pw")];
        assert_eq!(
            &redact(&a)[1..],
            &[Bytes::from("(redacted)"), Bytes::from("(redacted)")]
        );
        let h = [
            Bytes::from("HELLO"),
            Bytes::from("3"),
            Bytes::from("AUTH"),
            Bytes::from("default"),
            Bytes::from("pw"),
            Bytes::from("SETNAME"),
            Bytes::from("x"),
        ];
        let r = redact(&h);
        assert_eq!(r[3], Bytes::from("(redacted)"));
        assert_eq!(r[4], Bytes::from("(redacted)"));
        assert_eq!(r[6], Bytes::from("x"));
        let g = [Bytes::from("GET"), Bytes::from("k")];
        assert!(matches!(redact(&g), std::borrow::Cow::Borrowed(_)));
    }

    #[tokio::test]
    async fn feed_reaches_attached_and_drops_gone() {
        let m = Monitors::default();
        assert!(!m.any());
        let mut rx = m.attach();
        let rx2 = m.attach();
        drop(rx2);
        m.feed(Bytes::from("x"));
        assert!(m.any());
        assert_eq!(rx.recv().await, Some(Bytes::from("x")));
        drop(rx);
        m.feed(Bytes::from("y"));
        assert!(!m.any());
    }
}
