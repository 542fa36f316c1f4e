//! The Prometheus metric families a node exports: one table that the node
//! registers at start (so every family is scraped from the first second,
//! at zero, with its HELP text) and that README's list is checked against.

use crate::resp::cmd::COMMANDS;
use metrics::{Counter, Histogram, Unit};
use std::sync::OnceLock;

/// What kind of series a family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (reset by a restart).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Latency distribution in seconds.
    Histogram,
}

/// One metric family.
#[derive(Debug)]
pub struct Family {
    /// Name as scraped.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The label this family is split by, if any, and its known values
    /// (each is registered at start so the family shows up at zero).
    pub label: Option<(&'static str, &'static [&'static str])>,
    /// HELP text; also README's description.
    pub help: &'static str,
}

/// Request kinds of node-to-node RPCs (label `kind` of
/// `dynkv_rpc_duration_seconds`), in [`crate::core::message::Request`] order.
pub const RPC_KINDS: &[&str] = &[
    "ping",
    "get",
    "put_many",
    "put",
    "coordinate",
    "flush_all",
    "join",
    "gossip",
    "gc_push",
    "gc_delete",
    "handoff",
    "anti_entropy",
];

/// Failure kinds of node-to-node RPCs (`crate::net::RpcError::kind`).
pub const RPC_FAILURE_KINDS: &[&str] = &[
    "timeout",
    "connect",
    "io",
    "refused",
    "decode",
    "partitioned",
    "encode",
    "too_large",
    "overloaded",
    "auth",
];

/// Label values meaning "every command in the command table".
const COMMAND_LABEL: &[&str] = &[];

/// Every family the node exports.
#[rustfmt::skip]
pub static FAMILIES: &[Family] = &[
    Family { name: "dynkv_commands_total", kind: Kind::Counter, label: None, help: "Client commands run." },
    Family { name: "dynkv_error_replies_total", kind: Kind::Counter, label: None, help: "Error replies sent to clients." },
    Family { name: "dynkv_command_duration_seconds", kind: Kind::Histogram, label: Some(("command", COMMAND_LABEL)), help: "Time to run one client command on this node, by command." },
    Family { name: "dynkv_connected_clients", kind: Kind::Gauge, label: None, help: "Client connections open." },
    Family { name: "dynkv_forwarded_requests_total", kind: Kind::Counter, label: None, help: "Requests this node forwarded to a coordinator in the key's preference list." },
    Family { name: "dynkv_quorum_failures_total", kind: Kind::Counter, label: None, help: "Requests that failed because too few replicas answered (R or W not met)." },
    Family { name: "dynkv_read_repairs_total", kind: Kind::Counter, label: None, help: "Stale replicas updated by read repair." },
    Family { name: "dynkv_ae_keys_repaired_total", kind: Kind::Counter, label: None, help: "Keys anti-entropy repaired (merged here with a change, or pushed to a peer that lacked them)." },
    Family { name: "dynkv_ae_keys_compared_total", kind: Kind::Counter, label: None, help: "Keys whose (key, digest) entries this node compared for a peer's anti-entropy exchange." },
    Family { name: "dynkv_ae_bytes_sent_total", kind: Kind::Counter, label: None, help: "Encoded bytes of anti-entropy requests (and pushed objects) this node sent." },
    Family { name: "dynkv_ae_bytes_received_total", kind: Kind::Counter, label: None, help: "Encoded bytes of anti-entropy answers this node received." },
    Family { name: "dynkv_ae_rounds_total", kind: Kind::Counter, label: None, help: "Anti-entropy rounds completed (every replicated partition compared with a peer)." },
    Family { name: "dynkv_hints_stored_total", kind: Kind::Counter, label: None, help: "Writes kept as hints for an unreachable owner." },
    Family { name: "dynkv_hints_delivered_total", kind: Kind::Counter, label: None, help: "Hints handed back to their owner." },
    Family { name: "dynkv_hints_dropped_total", kind: Kind::Counter, label: None, help: "Hints dropped (per-target limit reached or expired)." },
    Family { name: "dynkv_hints_pending", kind: Kind::Gauge, label: None, help: "Hints waiting for their owner." },
    Family { name: "dynkv_hint_store_dropped", kind: Kind::Gauge, label: None, help: "Hints the hint store has dropped since it was created (kept across restarts; INFO hints_dropped)." },
    Family { name: "dynkv_writer_queue_depth", kind: Kind::Gauge, label: None, help: "Writes queued for the storage writer thread." },
    Family { name: "dynkv_handoff_bytes_sent_total", kind: Kind::Counter, label: None, help: "Value bytes of partition records this node streamed to new owners during membership changes." },
    Family { name: "dynkv_handoff_bytes_received_total", kind: Kind::Counter, label: None, help: "Value bytes of partition records this node received from old owners during membership changes." },
    Family { name: "dynkv_handoff_keys_sent_total", kind: Kind::Counter, label: None, help: "Records this node streamed to new owners during membership changes." },
    Family { name: "dynkv_handoff_keys_dropped_total", kind: Kind::Counter, label: None, help: "Records this node deleted because their partition moved to other nodes." },
    Family { name: "dynkv_partitions_moving", kind: Kind::Gauge, label: None, help: "Partition replicas the running membership change has still to copy (0 when none runs)." },
    Family { name: "dynkv_suspected_peers", kind: Kind::Gauge, label: None, help: "Members this node currently believes unreachable." },
    Family { name: "dynkv_clock_offset_ms", kind: Kind::Gauge, label: None, help: "This node's clock offset from the cluster's, in milliseconds." },
    Family { name: "dynkv_rpc_requests_total", kind: Kind::Counter, label: Some(("side", &["client", "server"])), help: "Node-to-node RPCs sent (side=client) and served (side=server)." },
    Family { name: "dynkv_rpc_bytes_sent_total", kind: Kind::Counter, label: Some(("side", &["client", "server"])), help: "Encoded bytes of node-to-node RPC frames this node sent: requests (side=client) and replies (side=server)." },
    Family { name: "dynkv_rpc_failures_total", kind: Kind::Counter, label: Some(("kind", RPC_FAILURE_KINDS)), help: "Node-to-node RPCs that failed, by failure kind." },
    Family { name: "dynkv_auth_failures_total", kind: Kind::Counter, label: None, help: "Client AUTH (or HELLO ... AUTH) attempts with a wrong password." },
    Family { name: "dynkv_tls_handshake_failures_total", kind: Kind::Counter, label: None, help: "Client connections on the TLS port whose TLS handshake failed or timed out." },
    Family { name: "dynkv_cluster_auth_failures_total", kind: Kind::Counter, label: None, help: "Cluster-port connections whose peer failed to prove it holds the cluster secret." },
    Family { name: "dynkv_tombstones", kind: Kind::Gauge, label: None, help: "Records on this node holding only tombstones (counted by the last sweeper pass)." },
    Family { name: "dynkv_tombstones_purged_total", kind: Kind::Counter, label: None, help: "Tombstone records this node deleted after every owner held them and the grace had passed." },
    Family { name: "dynkv_purge_rounds_total", kind: Kind::Counter, label: None, help: "Tombstone purge rounds this node ran as the keys' purger." },
    Family { name: "dynkv_rpc_duration_seconds", kind: Kind::Histogram, label: Some(("kind", RPC_KINDS)), help: "Time for a replica RPC from the coordinator's side (success or failure), by request kind." },
];

/// Histogram buckets (seconds): 50 µs to 10 s, enough resolution for a
/// sub-millisecond GET and for a quorum write that waits on a slow disk.
pub const DURATION_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Histogram handles resolved once, so the request path records a sample
/// without formatting a label or looking anything up in the registry.
#[derive(Debug)]
pub struct Handles {
    /// Indexed like [`COMMANDS`].
    pub commands: Vec<Histogram>,
    /// Indexed like [`RPC_KINDS`].
    pub rpc: Vec<Histogram>,
    /// `dynkv_rpc_requests_total{side="client"}`.
    pub rpc_sent: Counter,
    /// `dynkv_rpc_requests_total{side="server"}`.
    pub rpc_served: Counter,
    /// `dynkv_forwarded_requests_total`.
    pub forwarded: Counter,
    /// `dynkv_rpc_bytes_sent_total{side="client"}`.
    pub rpc_request_bytes: Counter,
    /// `dynkv_rpc_bytes_sent_total{side="server"}`.
    pub rpc_reply_bytes: Counter,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// The pre-resolved handles. Resolved by [`register_all`] once the recorder
/// is installed; without a recorder (metrics off, in-process tests) they
/// are no-ops.
pub fn handles() -> &'static Handles {
    HANDLES.get_or_init(|| Handles {
        commands: COMMANDS
            .iter()
            .map(|c| metrics::histogram!("dynkv_command_duration_seconds", "command" => c.name))
            .collect(),
        rpc: RPC_KINDS
            .iter()
            .map(|k| metrics::histogram!("dynkv_rpc_duration_seconds", "kind" => *k))
            .collect(),
        rpc_sent: metrics::counter!("dynkv_rpc_requests_total", "side" => "client"),
        rpc_served: metrics::counter!("dynkv_rpc_requests_total", "side" => "server"),
        forwarded: metrics::counter!("dynkv_forwarded_requests_total"),
        rpc_request_bytes: metrics::counter!("dynkv_rpc_bytes_sent_total", "side" => "client"),
        rpc_reply_bytes: metrics::counter!("dynkv_rpc_bytes_sent_total", "side" => "server"),
    })
}

/// Describes every family and registers each series at zero. Call right
/// after installing the recorder, before anything else records.
pub fn register_all() {
    for f in FAMILIES {
        let values: Vec<&'static str> = match f.label {
            None => Vec::new(),
            Some(("command", _)) => COMMANDS.iter().map(|c| c.name).collect(),
            Some((_, values)) => values.to_vec(),
        };
        match f.kind {
            Kind::Counter => {
                metrics::describe_counter!(f.name, f.help);
                match f.label {
                    None => metrics::counter!(f.name).increment(0),
                    Some((label, _)) => {
                        for v in &values {
                            metrics::counter!(f.name, label => *v).increment(0);
                        }
                    }
                }
            }
            Kind::Gauge => {
                metrics::describe_gauge!(f.name, f.help);
                metrics::gauge!(f.name).set(0.0);
            }
            Kind::Histogram => {
                metrics::describe_histogram!(f.name, Unit::Seconds, f.help);
            }
        }
    }
    // Histogram series are registered by resolving their handles.
    let _ = handles();
}

/// Index of an RPC request kind in [`RPC_KINDS`].
pub fn rpc_kind_index(req: &crate::core::message::Request) -> usize {
    use crate::core::message::Request;
    match req {
        Request::Ping => 0,
        Request::Get { .. } => 1,
        Request::PutMany { .. } => 2,
        Request::Put { .. } => 3,
        Request::Coordinate { .. } | Request::Command { .. } => 4,
        Request::FlushAll | Request::FlushDb { .. } => 5,
        Request::Join { .. } => 6,
        Request::Gossip { .. } | Request::GossipDigest { .. } | Request::GossipPush { .. } => 7,
        Request::GcPush { .. } => 8,
        Request::GcDelete { .. } => 9,
        Request::Handoff { .. } => 10,
        Request::AeRoots { .. }
        | Request::AeLevel { .. }
        | Request::AeLeaves { .. }
        | Request::AeSummary { .. } => 11,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_unique_and_named_dynkv() {
        let mut names: Vec<_> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
        assert!(names.iter().all(|n| n.starts_with("dynkv_")));
    }

    /// README's "Observability" list is this table: same names, same order.
    #[test]
    fn readme_lists_exactly_the_registered_families() {
        let readme = include_str!("../../README.md");
        let listed: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `dynkv_"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let ours: Vec<String> = FAMILIES
            .iter()
            .map(|f| f.name.trim_start_matches("dynkv_").to_string())
            .collect();
        assert_eq!(
            listed, ours,
            "README's metric table and catalog::FAMILIES differ"
        );
    }
}
