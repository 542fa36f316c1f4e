//! CLUSTER, READONLY, READWRITE, ASKING: the Redis Cluster protocol on
//! dynkv's ring.
//!
//! A key's hash slot is the top of its ring hash and a partition is a run of
//! whole slots, so the slot map is exact: each slot range is served by its
//! partition's preference list, the first healthy owner as master and the
//! other healthy owners as replicas. A Redis Cluster client that fetched the
//! map sends each key to a node that coordinates it, and the forward hop
//! disappears. Any node still serves any key: a client with a stale map
//! gets a correct answer; only a connection that fetched the map is told
//! `MOVED` (see [`moved`]) so it refreshes after a join or a leave.

use super::{CmdResult, is, parse_i64};
use crate::core::{SlotRange, cluster_node_id, key_slot, slot_runs, slot_start_hash};
use crate::kv::{ClusterMember, ClusterView, Kv};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use bytes::Bytes;

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot> stored on this node.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by this node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "MYSHARDID",
    "    Return the id of the shard this node leads most slots of.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@cport> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "SHARDS",
    "    Return information about slot range mappings and the nodes serving them.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "HELP",
    "    Print this help.",
];

/// Runs a CLUSTER subcommand.
pub async fn run<K: Kv>(kv: &K, session: &mut Session, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    match &args[2..] {
        [key] if is(sub, "KEYSLOT") => Ok(Reply::Int(i64::from(key_slot(key)))),
        [] if is(sub, "HELP") => Ok(Reply::Array(
            HELP.iter().map(|l| Reply::Simple((*l).into())).collect(),
        )),
        [] if is(sub, "MYID") => Ok(Reply::bulk(cluster_node_id(&view(kv)?.me))),
        [] if is(sub, "MYSHARDID") => Ok(Reply::bulk(my_shard_id(&view(kv)?))),
        [] if is(sub, "INFO") => Ok(Reply::Verbatim(info(&view(kv)?))),
        [] if is(sub, "SLOTS") => {
            session.cluster_aware = true;
            Ok(slots(&view(kv)?))
        }
        [] if is(sub, "SHARDS") => {
            session.cluster_aware = true;
            Ok(shards(&view(kv)?))
        }
        [] if is(sub, "NODES") => {
            session.cluster_aware = true;
            Ok(Reply::Verbatim(nodes(&view(kv)?)))
        }
        [slot] if is(sub, "COUNTKEYSINSLOT") => {
            let keys = keys_in_slot(kv, parse_slot(slot)?, usize::MAX).await?;
            Ok(Reply::Int(keys.len() as i64))
        }
        [slot, count] if is(sub, "GETKEYSINSLOT") => {
            let slot = parse_slot(slot)?;
            let count = usize::try_from(parse_i64(count)?)
                .map_err(|_| Reply::err("Invalid number of keys"))?;
            let keys = keys_in_slot(kv, slot, count).await?;
            Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()))
        }
        _ => Err(Reply::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
            String::from_utf8_lossy(sub)
        ))),
    }
}

/// READONLY / READWRITE / ASKING: accepted as Redis Cluster clients send
/// them. Reads are coordinated by whichever node receives them (a quorum
/// read needs no master), so READONLY changes nothing but is remembered
/// for CLIENT-style introspection.
pub fn connection_flag(session: &mut Session, name: &str) -> CmdResult {
    match name {
        "readonly" => session.readonly = true,
        "readwrite" => session.readonly = false,
        _ => {}
    }
    Ok(Reply::ok())
}

/// `-MOVED slot host:port` for a command of a cluster-aware connection
/// whose keys all hash to one slot that this node does not serve; `None`
/// when it runs here. Commands over several slots run here (not atomic
/// across slots) instead of failing with CROSSSLOT.
pub fn moved<K: Kv>(
    kv: &K,
    session: &Session,
    spec: &super::CommandSpec,
    args: &[Bytes],
) -> Option<Reply> {
    if !session.cluster_aware || session.forwarded || session.db != 0 || spec.first_key <= 0 {
        return None;
    }
    let first = usize::try_from(spec.first_key).ok()?;
    let last = if spec.last_key < 0 {
        args.len()
            .checked_sub(usize::try_from(-spec.last_key).ok()?)?
    } else {
        usize::try_from(spec.last_key)
            .ok()?
            .min(args.len().checked_sub(1)?)
    };
    let step = usize::try_from(spec.step.max(1)).ok()?;
    let mut slots = args
        .get(first..=last)?
        .iter()
        .step_by(step)
        .map(|k| key_slot(k));
    let slot = slots.next()?;
    if slots.any(|s| s != slot) {
        return None;
    }
    kv.moved_to(slot)
        .map(|addr| Reply::Error(format!("MOVED {slot} {addr}")))
}

fn view<K: Kv>(kv: &K) -> Result<ClusterView, Reply> {
    kv.cluster_view()
        .ok_or_else(|| Reply::err("This instance has cluster support disabled"))
}

fn parse_slot(arg: &[u8]) -> Result<u16, Reply> {
    parse_i64(arg)
        .ok()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| usize::from(*s) < crate::core::SLOTS)
        .ok_or_else(|| Reply::err("Invalid slot"))
}

/// Keys of `slot` stored on this node (at most `limit`), found by scanning
/// the slot's stretch of the ring.
async fn keys_in_slot<K: Kv>(kv: &K, slot: u16, limit: usize) -> Result<Vec<Bytes>, Reply> {
    const PAGE: usize = 1000;
    let mut keys = Vec::new();
    let mut cursor = slot_start_hash(slot);
    while keys.len() < limit {
        let page = kv.scan(cursor, PAGE).await.map_err(super::kv_error)?;
        let mut past_slot = false;
        for key in page.keys {
            match key_slot(&key) {
                s if s == slot && keys.len() < limit => keys.push(key),
                s if s > slot => past_slot = true,
                _ => {}
            }
        }
        if past_slot || page.next_cursor == 0 || page.next_cursor <= cursor {
            break;
        }
        cursor = page.next_cursor;
        if crate::core::slot_of_hash(cursor) != slot {
            break;
        }
    }
    Ok(keys)
}

/// `host` and `port` of a `host:port` address (IPv6 hosts in brackets).
fn host_port(addr: &str) -> (String, i64) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port.parse().unwrap_or(0),
        ),
        None => (addr.to_string(), 0),
    }
}

fn member<'a>(v: &'a ClusterView, name: &crate::core::NodeId) -> Option<&'a ClusterMember> {
    v.members.iter().find(|m| &m.name == name)
}

/// CLUSTER SLOTS: `[start, end, [ip, port, id], ...replicas]` per range.
fn slots(v: &ClusterView) -> Reply {
    Reply::Array(
        v.ranges
            .iter()
            .map(|r| {
                let mut row = vec![
                    Reply::Int(i64::from(r.first)),
                    Reply::Int(i64::from(r.last)),
                ];
                row.extend(r.owners.iter().filter_map(|o| member(v, o)).map(|m| {
                    let (host, port) = host_port(&m.client_addr);
                    Reply::Array(vec![
                        Reply::bulk(host),
                        Reply::Int(port),
                        Reply::bulk(cluster_node_id(&m.name)),
                    ])
                }));
                Reply::Array(row)
            })
            .collect(),
    )
}

/// The ranges grouped by owner list: each group is one "shard".
fn shard_groups(v: &ClusterView) -> Vec<(&[crate::core::NodeId], Vec<&SlotRange>)> {
    let mut groups: Vec<(&[crate::core::NodeId], Vec<&SlotRange>)> = Vec::new();
    for r in &v.ranges {
        match groups
            .iter_mut()
            .find(|(owners, _)| *owners == r.owners.as_slice())
        {
            Some((_, ranges)) => ranges.push(r),
            None => groups.push((r.owners.as_slice(), vec![r])),
        }
    }
    groups
}

/// A shard's id: the digest of its owner list, stable across nodes.
fn shard_id(owners: &[crate::core::NodeId]) -> String {
    let joined: Vec<&str> = owners.iter().map(|o| o.as_str()).collect();
    cluster_node_id(&crate::core::NodeId::new(&joined.join(",")))
}

fn my_shard_id(v: &ClusterView) -> String {
    shard_groups(v)
        .into_iter()
        .filter(|(owners, _)| owners.first() == Some(&v.me))
        .max_by_key(|(_, ranges)| ranges.len())
        .map(|(owners, _)| shard_id(owners))
        .unwrap_or_else(|| shard_id(std::slice::from_ref(&v.me)))
}

/// CLUSTER SHARDS: one entry per distinct preference list.
fn shards(v: &ClusterView) -> Reply {
    let text = |s: &str| Reply::bulk(s.to_string());
    Reply::Array(
        shard_groups(v)
            .into_iter()
            .map(|(owners, ranges)| {
                let slots = ranges
                    .iter()
                    .flat_map(|r| {
                        [
                            Reply::Int(i64::from(r.first)),
                            Reply::Int(i64::from(r.last)),
                        ]
                    })
                    .collect();
                let nodes = owners
                    .iter()
                    .enumerate()
                    .filter_map(|(i, o)| member(v, o).map(|m| (i, m)))
                    .map(|(i, m)| {
                        let (host, port) = host_port(&m.client_addr);
                        Reply::Map(vec![
                            (text("id"), Reply::bulk(cluster_node_id(&m.name))),
                            (text("port"), Reply::Int(port)),
                            (text("ip"), Reply::bulk(host.clone())),
                            (text("endpoint"), Reply::bulk(host)),
                            (
                                text("role"),
                                text(if i == 0 { "master" } else { "replica" }),
                            ),
                            (text("replication-offset"), Reply::Int(0)),
                            (text("health"), text(if m.up { "online" } else { "failed" })),
                        ])
                    })
                    .collect();
                Reply::Map(vec![
                    (text("slots"), Reply::Array(slots)),
                    (text("nodes"), Reply::Array(nodes)),
                ])
            })
            .collect(),
    )
}

/// CLUSTER NODES: every member as a master of the ranges it leads.
fn nodes(v: &ClusterView) -> String {
    let mut out = String::new();
    for m in &v.members {
        let led: Vec<(u16, u16)> = v
            .ranges
            .iter()
            .filter(|r| r.owners.first() == Some(&m.name))
            .map(|r| (r.first, r.last))
            .collect();
        let (_, cport) = host_port(&m.cluster_addr);
        let mut flags = String::new();
        if m.name == v.me {
            flags.push_str("myself,");
        }
        flags.push_str("master");
        if !m.up {
            flags.push_str(",fail");
        }
        let link = if m.up { "connected" } else { "disconnected" };
        out.push_str(&format!(
            "{} {}@{} {} - 0 0 {} {}",
            cluster_node_id(&m.name),
            m.client_addr,
            cport,
            flags,
            v.epoch,
            link
        ));
        for (first, last) in slot_runs(led) {
            if first == last {
                out.push_str(&format!(" {first}"));
            } else {
                out.push_str(&format!(" {first}-{last}"));
            }
        }
        out.push('\n');
    }
    out
}

/// CLUSTER INFO.
fn info(v: &ClusterView) -> String {
    let up = v.members.iter().filter(|m| m.up).count();
    let failing: usize = v
        .ranges
        .iter()
        .filter(|r| r.owners.iter().all(|o| member(v, o).is_none_or(|m| !m.up)))
        .map(|r| usize::from(r.last - r.first) + 1)
        .sum();
    let masters = v
        .members
        .iter()
        .filter(|m| v.ranges.iter().any(|r| r.owners.first() == Some(&m.name)))
        .count();
    let state = if failing == 0 { "ok" } else { "fail" };
    [
        format!("cluster_state:{state}"),
        format!("cluster_slots_assigned:{}", crate::core::SLOTS),
        format!("cluster_slots_ok:{}", crate::core::SLOTS - failing),
        "cluster_slots_pfail:0".to_string(),
        format!("cluster_slots_fail:{failing}"),
        format!("cluster_known_nodes:{}", v.members.len()),
        format!("cluster_size:{masters}"),
        format!("cluster_current_epoch:{}", v.epoch),
        format!("cluster_my_epoch:{}", v.epoch),
        format!("cluster_members_up:{up}"),
        "cluster_stats_messages_sent:0".to_string(),
        "cluster_stats_messages_received:0".to_string(),
        "total_cluster_links_buffer_limit_exceeded:0".to_string(),
        String::new(),
    ]
    .join("\r\n")
}
