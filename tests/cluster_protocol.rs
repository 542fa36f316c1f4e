//! The Redis Cluster protocol on dynkv's ring, against real `dynkv`
//! processes: CLUSTER SLOTS / SHARDS / NODES / INFO describe the ring
//! exactly (each slot range's preference list, first healthy owner as
//! master), a connection that fetched the map is told `MOVED` for keys this
//! node does not serve, and a plain connection is served anyway.

mod common;

use common::cluster::{Cluster, info_int, name, wait_for};
use common::{Reply, Server};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SLOTS: usize = 16384;

/// One CLUSTER SLOTS row: first slot, last slot, owner ports (master first).
fn parse_slots(r: &Reply) -> Vec<(usize, usize, Vec<i64>)> {
    let Reply::Array(rows) = r else {
        panic!("CLUSTER SLOTS: {r:?}")
    };
    rows.iter()
        .map(|row| {
            let Reply::Array(f) = row else {
                panic!("slot row {row:?}")
            };
            let (Reply::Int(first), Reply::Int(last)) = (&f[0], &f[1]) else {
                panic!("slot bounds {f:?}")
            };
            let ports = f[2..]
                .iter()
                .map(|n| match n {
                    Reply::Array(node) => match (&node[0], &node[1], &node[2]) {
                        (Reply::Bulk(ip), Reply::Int(port), Reply::Bulk(id)) => {
                            assert_eq!(ip, b"127.0.0.1");
                            assert_eq!(id.len(), 40);
                            *port
                        }
                        other => panic!("node entry {other:?}"),
                    },
                    other => panic!("node entry {other:?}"),
                })
                .collect();
            (*first as usize, *last as usize, ports)
        })
        .collect()
}

/// Node name → client port, from DYN.MEMBERS.
fn ports_by_name(c: &Cluster) -> BTreeMap<String, i64> {
    c.members(0)
        .unwrap_or_else(|e| panic!("members: {e}"))
        .into_iter()
        .map(|m| {
            let port = m.addr.rsplit(':').next().and_then(|p| p.parse().ok());
            (m.name, port.unwrap_or_else(|| panic!("address {}", m.addr)))
        })
        .collect()
}

/// A four-node N=3 cluster whose join has settled, so every node leaves
/// out about a quarter of the slots.
fn four_nodes() -> Cluster {
    let c = Cluster::start(4);
    wait_for(Duration::from_secs(60), "partitions to stop moving", || {
        for i in 0..4 {
            let moving = info_int(&c.info(i)?, "partitions_moving")?;
            if moving != 0 {
                return Err(format!("{} has {moving} partitions moving", name(i)));
            }
        }
        Ok(())
    });
    c
}

#[test]
fn cluster_slots_shards_and_nodes_describe_the_ring() {
    let c = four_nodes();
    let ports = ports_by_name(&c);
    let ring = c.ring(0).unwrap_or_else(|e| panic!("ring: {e}"));
    let width = SLOTS / ring.len();

    let slots = parse_slots(&c.ok(0, &["CLUSTER", "SLOTS"]));
    let mut next = 0;
    for (first, last, owners) in &slots {
        assert_eq!(*first, next, "slot ranges must be contiguous");
        next = last + 1;
        // Every partition inside the range has exactly this preference list.
        for p in first / width..=last / width {
            let expected: Vec<i64> = ring[&(p as i64)].iter().map(|n| ports[n]).collect();
            assert_eq!(owners, &expected, "partition {p}");
        }
    }
    assert_eq!(next, SLOTS, "CLUSTER SLOTS must cover every slot");

    // CLUSTER NODES: every member once, one of them myself, each leading
    // the slots whose range it is master of.
    let nodes = c.ok(1, &["CLUSTER", "NODES"]).as_str();
    let lines: Vec<&str> = nodes.lines().collect();
    assert_eq!(lines.len(), 4, "{nodes}");
    let mut led = BTreeSet::new();
    let mut myself = Vec::new();
    for line in &lines {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f[0].len(), 40, "{line}");
        assert!(f[2].contains("master"), "{line}");
        assert_eq!(f[7], "connected", "{line}");
        if f[2].contains("myself") {
            myself.push(f[0].to_string());
            assert!(
                f[1].starts_with(&format!("127.0.0.1:{}@", ports["n2"])),
                "{line}"
            );
        }
        for run in &f[8..] {
            let (a, b) = run.split_once('-').unwrap_or((run, run));
            let (a, b): (usize, usize) = (a.parse().expect("slot"), b.parse().expect("slot"));
            for s in a..=b {
                assert!(led.insert(s), "slot {s} led twice");
            }
        }
    }
    assert_eq!(led.len(), SLOTS);
    assert_eq!(myself, vec![c.ok(1, &["CLUSTER", "MYID"]).as_str()]);

    // CLUSTER SHARDS covers every slot once too.
    let Reply::Array(shards) = c.ok(2, &["CLUSTER", "SHARDS"]) else {
        panic!("CLUSTER SHARDS")
    };
    let mut covered = 0;
    for shard in &shards {
        let Reply::Array(kv) = shard else {
            panic!("shard {shard:?}")
        };
        assert_eq!(kv[0], Reply::Bulk(b"slots".to_vec()));
        let Reply::Array(bounds) = &kv[1] else {
            panic!("slots {kv:?}")
        };
        for pair in bounds.chunks(2) {
            let (Reply::Int(a), Reply::Int(b)) = (&pair[0], &pair[1]) else {
                panic!("bounds {pair:?}")
            };
            covered += (b - a + 1) as usize;
        }
    }
    assert_eq!(covered, SLOTS);

    let info = c.ok(3, &["CLUSTER", "INFO"]).as_str();
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_known_nodes:4"), "{info}");
    assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
    let server_info = c.ok(0, &["INFO", "cluster"]).as_str();
    assert!(server_info.contains("cluster_enabled:1"), "{server_info}");
}

#[test]
fn cluster_aware_connections_are_moved_plain_ones_are_served() {
    let c = four_nodes();
    let ports = ports_by_name(&c);
    let slots = parse_slots(&c.ok(0, &["CLUSTER", "SLOTS"]));
    let owners_of = |slot: usize| -> Vec<i64> {
        slots
            .iter()
            .find(|(a, b, _)| (*a..=*b).contains(&slot))
            .map(|(_, _, o)| o.clone())
            .unwrap_or_else(|| panic!("slot {slot} not mapped"))
    };
    let n1 = ports["n1"];
    let slot_of = |key: &str| -> usize {
        match c.ok(0, &["CLUSTER", "KEYSLOT", key]) {
            Reply::Int(s) => s as usize,
            other => panic!("KEYSLOT {other:?}"),
        }
    };
    let elsewhere = (0..)
        .map(|i| format!("away:{i}"))
        .find(|k| !owners_of(slot_of(k)).contains(&n1))
        .unwrap_or_default();
    let here = (0..)
        .map(|i| format!("home:{i}"))
        .find(|k| owners_of(slot_of(k)).contains(&n1))
        .unwrap_or_default();

    // A plain client is served whatever the key.
    let mut plain = c.conn(0);
    assert_eq!(
        plain.cmd_str(&["SET", &elsewhere, "v"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        plain.cmd_str(&["GET", &elsewhere]),
        Reply::Bulk(b"v".to_vec())
    );

    // Once it fetched the map, it is sent to the slot's master.
    let mut aware = c.conn(0);
    assert!(!aware.cmd_str(&["CLUSTER", "SLOTS"]).is_error());
    let slot = slot_of(&elsewhere);
    let master = owners_of(slot)[0];
    assert_eq!(
        aware.cmd_str(&["GET", &elsewhere]),
        Reply::Error(format!("MOVED {slot} 127.0.0.1:{master}"))
    );
    assert_eq!(
        aware.cmd_str(&["SET", &here, "w"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(aware.cmd_str(&["GET", &here]), Reply::Bulk(b"w".to_vec()));
    // Keys of several slots run here (not atomic across slots), no CROSSSLOT.
    assert_eq!(
        aware.cmd_str(&["MSET", &elsewhere, "x", &here, "y"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(aware.cmd_str(&["READONLY"]), Reply::Simple("OK".into()));
    assert_eq!(aware.cmd_str(&["READWRITE"]), Reply::Simple("OK".into()));
    // Inside MULTI a redirect dooms the transaction, as in Redis Cluster.
    assert_eq!(aware.cmd_str(&["MULTI"]), Reply::Simple("OK".into()));
    assert!(
        aware
            .cmd_str(&["SET", &elsewhere, "z"])
            .as_str()
            .starts_with("MOVED ")
    );
    assert!(aware.cmd_str(&["EXEC"]).as_str().starts_with("EXECABORT"));
    // The master itself serves the key to a cluster-aware connection.
    let master_node = ports.iter().find(|(_, p)| **p == master).map(|(n, _)| n);
    let master_index = master_node
        .and_then(|n| n.trim_start_matches('n').parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no node on port {master}"))
        - 1;
    let mut at_master = c.conn(master_index);
    assert!(!at_master.cmd_str(&["CLUSTER", "NODES"]).is_error());
    assert_eq!(
        at_master.cmd_str(&["GET", &elsewhere]),
        Reply::Bulk(b"x".to_vec())
    );
}

#[test]
fn a_lone_node_serves_every_slot_and_counts_its_keys() {
    let server = Server::start();
    let mut c = server.raw();
    let slots = parse_slots(&c.cmd_str(&["CLUSTER", "SLOTS"]));
    assert_eq!(slots, vec![(0, SLOTS - 1, vec![i64::from(server.port())])]);
    for k in ["{tag}a", "{tag}b", "{tag}c", "other"] {
        assert_eq!(c.cmd_str(&["SET", k, "v"]), Reply::Simple("OK".into()));
    }
    let slot = match c.cmd_str(&["CLUSTER", "KEYSLOT", "{tag}a"]) {
        Reply::Int(s) => s.to_string(),
        other => panic!("KEYSLOT {other:?}"),
    };
    assert_eq!(
        c.cmd_str(&["CLUSTER", "COUNTKEYSINSLOT", &slot]),
        Reply::Int(3)
    );
    let Reply::Array(keys) = c.cmd_str(&["CLUSTER", "GETKEYSINSLOT", &slot, "2"]) else {
        panic!("GETKEYSINSLOT")
    };
    assert_eq!(keys.len(), 2);
    assert!(
        c.cmd_str(&["CLUSTER", "COUNTKEYSINSLOT", "16384"])
            .is_error()
    );
    assert!(
        c.cmd_str(&["CLUSTER", "GETKEYSINSLOT", &slot, "-1"])
            .is_error()
    );
    let info = c.cmd_str(&["CLUSTER", "INFO"]).as_str();
    assert!(
        info.contains("cluster_state:ok") && info.contains("cluster_size:1"),
        "{info}"
    );
    // A key no node leads elsewhere is never MOVED on a lone node.
    assert_eq!(c.cmd_str(&["GET", "other"]), Reply::Bulk(b"v".to_vec()));
}

#[test]
fn the_cluster_client_port_is_advertised_and_redirects_without_asking() {
    // Three nodes, N=2: each node serves about two thirds of the slots.
    let ports = common::free_ports(3);
    let mut nodes: Vec<Server> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let mut a = vec![
            "--node-name".to_string(),
            name(i),
            "--n".into(),
            "2".into(),
            "--r".into(),
            "2".into(),
            "--w".into(),
            "2".into(),
            "--cluster-client-port".into(),
            port.to_string(),
            "--cluster-secret".into(),
            common::cluster::TEST_SECRET.into(),
        ];
        if i > 0 {
            a.push("--join".into());
            a.push(format!("127.0.0.1:{}", nodes[0].cluster_port()));
        }
        let refs: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        nodes.push(Server::start_with(&refs));
    }
    let c = Cluster {
        nodes,
        n: 2,
        r: 2,
        w: 2,
    };
    c.wait_converged(&[0, 1, 2], common::cluster::CONVERGE_TIMEOUT);
    let slots = wait_for(Duration::from_secs(60), "a three-node slot map", || {
        let slots = parse_slots(&c.q(0, &["CLUSTER", "SLOTS"]));
        let advertised: BTreeSet<i64> = slots.iter().flat_map(|(_, _, o)| o.clone()).collect();
        let wanted: BTreeSet<i64> = ports.iter().map(|p| i64::from(*p)).collect();
        if advertised == wanted {
            Ok(slots)
        } else {
            Err(format!("map advertises {advertised:?}, want {wanted:?}"))
        }
    });
    let (first, _, owners) = slots
        .iter()
        .find(|(_, _, o)| !o.contains(&i64::from(ports[0])))
        .cloned()
        .unwrap_or_else(|| panic!("node 1 serves every slot: {slots:?}"));
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(
            |k| matches!(c.q(0, &["CLUSTER", "KEYSLOT", k]), Reply::Int(s) if s as usize == first),
        )
        .unwrap_or_default();
    // Through the cluster-client port the redirect needs no map fetch.
    let mut redirected = common::RawConn::connect(([127, 0, 0, 1], ports[0]).into());
    assert_eq!(
        redirected.cmd_str(&["SET", &key, "v"]),
        Reply::Error(format!("MOVED {first} 127.0.0.1:{}", owners[0]))
    );
    // The plain port serves it.
    assert_eq!(c.q(0, &["SET", &key, "v"]), Reply::Simple("OK".into()));
    let mut at_owner = common::RawConn::connect(([127, 0, 0, 1], owners[0] as u16).into());
    assert_eq!(at_owner.cmd_str(&["GET", &key]), Reply::Bulk(b"v".to_vec()));
}
