//! Redis's protected mode: while no password is set, only clients on the
//! loopback interface are served, so a server started with defaults and
//! bound to a public address is not open to the world.

use super::session::ServerState;
use crate::logging::RateLimit;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

static REFUSED: RateLimit = RateLimit::new();

/// What a refused client reads before the connection is closed (Redis's
/// exact text, so tools that recognise it keep doing so).
pub const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Whether a client just accepted from `peer` must get [`DENIED`] and be
/// closed; counts and logs (rate-limited) the refusal. Every listener calls
/// this right after accepting.
pub fn refuse(server: &ServerState, peer: SocketAddr) -> bool {
    if !refuses(
        server.protected_mode(),
        server.requirepass.is_some(),
        peer.ip(),
    ) {
        return false;
    }
    server
        .stats
        .protected_mode_denied
        .fetch_add(1, Ordering::Relaxed);
    if let Some(more) = REFUSED.check() {
        tracing::warn!("protected mode: refused client {peer}{more}");
    }
    true
}

/// Whether a client from `peer` must be refused.
pub fn refuses(protected_mode: bool, has_password: bool, peer: IpAddr) -> bool {
    protected_mode && !has_password && !is_loopback(peer)
}

/// Loopback, including IPv4 loopback written as an IPv6-mapped address
/// (what a dual-stack listener reports).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passwordless_protected_servers_refuse_remote_clients() {
        let remote: IpAddr = "192.0.2.7".parse().expect("ip");
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        let local6: IpAddr = "::1".parse().expect("ip");
        assert!(refuses(true, false, remote));
        assert!(!refuses(true, false, local));
        assert!(!refuses(true, false, mapped));
        assert!(!refuses(true, false, local6));
        assert!(!refuses(true, true, remote), "a password lifts it");
        assert!(!refuses(false, false, remote), "protected-mode no lifts it");
        assert!(refuses(
            true,
            false,
            "::ffff:192.0.2.7".parse().expect("ip")
        ));
    }
}
