//! The `stats` command: memcached's general counters, `settings`, and
//! `items` / `slabs` answered with what a store without slabs can say.

use super::state::MemcacheState;
use crate::kv::Kv;
use bytes::{BufMut, BytesMut};

fn stat(out: &mut BytesMut, name: &str, value: impl std::fmt::Display) {
    out.put_slice(format!("STAT {name} {value}\r\n").as_bytes());
}

/// Appends the reply to `stats [group]`.
pub fn render<K: Kv>(kv: &K, state: &MemcacheState, group: Option<&str>, out: &mut BytesMut) {
    match group {
        None => {
            stat(out, "pid", std::process::id());
            stat(out, "uptime", state.uptime_secs());
            stat(out, "time", kv.now_ms() / 1000);
            stat(out, "version", super::VERSION);
            stat(out, "pointer_size", usize::BITS);
            stat(out, "max_connections", state.max_connections);
            for (name, value) in state.stats.fields() {
                stat(out, name, value);
            }
            stat(out, "curr_items", kv.key_count());
            stat(out, "threads", tokio_threads());
            stat(out, "node", kv.node_id());
        }
        Some("settings") => {
            stat(out, "maxconns", state.max_connections);
            stat(out, "tcpport", state.port);
            stat(out, "udpport", 0);
            stat(out, "evictions", "off");
            stat(out, "cas_enabled", "yes");
            stat(out, "binding_protocol", "ascii");
            stat(out, "auth_enabled_sasl", "no");
            stat(
                out,
                "auth_enabled_ascii",
                if state.password.is_some() {
                    "yes"
                } else {
                    "no"
                },
            );
            stat(out, "item_size_max", state.max_item);
            stat(out, "flush_enabled", "yes");
            stat(out, "num_threads", tokio_threads());
        }
        // No slab classes here: one class holding every key is the honest
        // answer to tools that walk them.
        Some("items") => {
            stat(out, "items:1:number", kv.key_count());
            stat(out, "items:1:age", 0);
            stat(out, "items:1:evicted", 0);
            stat(out, "items:1:outofmemory", 0);
        }
        Some("slabs") => {
            stat(out, "1:chunk_size", state.max_item);
            stat(out, "1:used_chunks", kv.key_count());
            stat(out, "active_slabs", 1);
            stat(out, "total_malloced", 0);
        }
        Some("sizes" | "conns" | "extstore" | "detail") => {}
        Some(_) => {
            out.put_slice(b"ERROR\r\n");
            return;
        }
    }
    out.put_slice(b"END\r\n");
}

fn tokio_threads() -> usize {
    tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers())
}
