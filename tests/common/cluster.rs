//! Multi-node harness for the cluster tests: starts S `dynkv` processes on
//! free loopback ports, each joining through an existing member, and offers
//! parsers for the admin replies of the README (`DYN.MEMBERS`, `DYN.RING`,
//! `DYN.HINTS`, `DYN.DEBUG LOCAL`, `INFO dynamo`) plus polling helpers, so
//! tests wait for a condition with a generous deadline instead of sleeping.
//!
//! Nodes are named `n1`, `n2`, ... (index `i` in the API is 0-based, so
//! node `i` is named `n{i+1}`). When a test panics, the tail of every
//! node's log is printed.
#![allow(dead_code)]

use super::{RawConn, Reply, Server, encode};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Fixed number of ring partitions (Q), Dynamo's "strategy 3".
pub const PARTITIONS: usize = 1024;
/// How long a freshly started cluster may take until every node agrees on
/// the members and the ring (gossip runs about once a second).
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Commands per pipelined batch.
pub const BATCH: usize = 500;
/// The cluster secret every harness node shares (`--cluster-secret`), unless
/// a test passes its own.
pub const TEST_SECRET: &str = "dynkv-test-cluster-secret";

// ---------------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------------

/// Polls `f` every 200 ms until it returns `Ok`, and returns its value.
/// Panics after `timeout` with `what` and the last `Err` text.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => {
                eprintln!("[{what}] reached after {:?}", start.elapsed());
                return v;
            }
            Err(last) => {
                if start.elapsed() > timeout {
                    panic!("timed out after {timeout:?} waiting for: {what}\nlast state: {last}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls `cond` until it is true; panics after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, what, || {
        if cond() {
            Ok(())
        } else {
            Err("condition false".into())
        }
    })
}

// ---------------------------------------------------------------------------
// Reply parsing
// ---------------------------------------------------------------------------

/// Partition → preference list, as `DYN.RING` reports it.
pub type RingMap = BTreeMap<i64, Vec<String>>;

/// One row of `DYN.MEMBERS`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    pub name: String,
    pub addr: String,
    pub status: String,
    pub partitions: i64,
}

fn array<'a>(r: &'a Reply, what: &str) -> Result<&'a [Reply], String> {
    match r {
        Reply::Array(items) | Reply::Set(items) => Ok(items),
        other => Err(format!("{what}: expected an array, got {other:?}")),
    }
}

fn string(r: &Reply, what: &str) -> Result<String, String> {
    match r {
        Reply::Bulk(_) | Reply::Simple(_) | Reply::Verbatim(..) => Ok(r.as_str()),
        other => Err(format!("{what}: expected a string, got {other:?}")),
    }
}

fn int(r: &Reply, what: &str) -> Result<i64, String> {
    match r {
        Reply::Int(i) => Ok(*i),
        other => Err(format!("{what}: expected an integer, got {other:?}")),
    }
}

/// Parses a `DYN.MEMBERS` reply, sorted by name.
pub fn parse_members(r: &Reply) -> Result<Vec<Member>, String> {
    let mut out = Vec::new();
    for row in array(r, "DYN.MEMBERS")? {
        let f = array(row, "DYN.MEMBERS row")?;
        if f.len() != 4 {
            return Err(format!("DYN.MEMBERS row should have 4 fields, got {row:?}"));
        }
        out.push(Member {
            name: string(&f[0], "member name")?,
            addr: string(&f[1], "member address")?,
            status: string(&f[2], "member status")?,
            partitions: int(&f[3], "member partitions_owned")?,
        });
    }
    out.sort();
    Ok(out)
}

/// Parses a `DYN.RING` reply into partition → preference list.
pub fn parse_ring(r: &Reply) -> Result<BTreeMap<i64, Vec<String>>, String> {
    let mut out = BTreeMap::new();
    for row in array(r, "DYN.RING")? {
        let f = array(row, "DYN.RING row")?;
        if f.len() != 2 {
            return Err(format!("DYN.RING row should have 2 fields, got {row:?}"));
        }
        let p = int(&f[0], "partition")?;
        let names = array(&f[1], "preference list")?
            .iter()
            .map(|n| string(n, "preference list name"))
            .collect::<Result<Vec<_>, _>>()?;
        if out.insert(p, names).is_some() {
            return Err(format!("DYN.RING lists partition {p} twice"));
        }
    }
    Ok(out)
}

/// Parses a `DYN.HINTS` reply into target → count.
pub fn parse_hints(r: &Reply) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for row in array(r, "DYN.HINTS")? {
        let f = array(row, "DYN.HINTS row")?;
        if f.len() != 2 {
            return Err(format!("DYN.HINTS row should have 2 fields, got {row:?}"));
        }
        *out.entry(string(&f[0], "hint target")?).or_insert(0) += int(&f[1], "hint count")?;
    }
    Ok(out)
}

/// A `[context, [values or nil]]` reply (DYN.GET, DYN.DEBUG LOCAL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    pub context: String,
    pub values: Vec<Option<String>>,
}

impl Versions {
    /// The values, sorted (siblings come in no particular order).
    pub fn sorted(&self) -> Vec<Option<String>> {
        let mut v = self.values.clone();
        v.sort();
        v
    }
}

/// Parses `[context, [values or nil]]`.
pub fn parse_versions(r: &Reply) -> Result<Versions, String> {
    let f = array(r, "[context, [values]]")?;
    if f.len() != 2 {
        return Err(format!("expected [context, [values]], got {r:?}"));
    }
    let context = string(&f[0], "context")?;
    let values = array(&f[1], "values")?
        .iter()
        .map(|v| match v {
            Reply::Nil => Ok(None),
            other => string(other, "value").map(Some),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Versions { context, values })
}

/// Parses the `field:value` lines of an INFO reply.
pub fn parse_info(r: &Reply) -> Result<BTreeMap<String, String>, String> {
    let text = string(r, "INFO")?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// An INFO field as an integer (error if missing or not a number).
pub fn info_int(info: &BTreeMap<String, String>, field: &str) -> Result<i64, String> {
    let v = info
        .get(field)
        .ok_or_else(|| format!("INFO dynamo has no {field} field: {info:?}"))?;
    v.parse()
        .map_err(|_| format!("INFO dynamo {field}:{v} is not an integer"))
}

// ---------------------------------------------------------------------------
// Pipelining
// ---------------------------------------------------------------------------

/// Sends `cmds` over `conn` in pipelined batches of [`BATCH`] and returns
/// every reply, in order.
pub fn pipeline(conn: &mut RawConn, cmds: &[Vec<Vec<u8>>]) -> Vec<Reply> {
    let mut out = Vec::with_capacity(cmds.len());
    for chunk in cmds.chunks(BATCH) {
        let mut buf = Vec::new();
        for c in chunk {
            let args: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
            buf.extend_from_slice(&encode(&args));
        }
        conn.send(&buf).expect("send pipeline");
        for _ in chunk {
            out.push(conn.read().expect("read pipelined reply"));
        }
    }
    out
}

/// Builds a command from string arguments.
pub fn args(a: &[&str]) -> Vec<Vec<u8>> {
    a.iter().map(|s| s.as_bytes().to_vec()).collect()
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

impl Server {
    /// Replaces the extra flags used by the next (re)start.
    pub fn set_extra_args(&mut self, args: &[String]) {
        self.extra_args = args.to_vec();
    }

    /// The extra flags of the next (re)start.
    pub fn extra_args(&self) -> &[String] {
        &self.extra_args
    }
}

/// A cluster of `dynkv` processes. Dropping it kills them all.
pub struct Cluster {
    pub nodes: Vec<Server>,
    pub n: usize,
    pub r: usize,
    pub w: usize,
}

/// Name of node `i` (0-based).
pub fn name(i: usize) -> String {
    format!("n{}", i + 1)
}

impl Cluster {
    /// Starts `size` nodes with `--n n --r r --w w` (plus `extra` flags):
    /// node 0 alone, node `i > 0` with `--join` to the cluster port of node
    /// `join_via(i)`. Does not wait for convergence (see
    /// [`Cluster::wait_converged`]).
    pub fn start_with(
        size: usize,
        (n, r, w): (usize, usize, usize),
        extra: &[&str],
        join_via: impl Fn(usize) -> usize,
    ) -> Cluster {
        let mut nodes: Vec<Server> = Vec::with_capacity(size);
        for i in 0..size {
            let mut a: Vec<String> = vec![
                "--node-name".into(),
                name(i),
                "--n".into(),
                n.to_string(),
                "--r".into(),
                r.to_string(),
                "--w".into(),
                w.to_string(),
            ];
            if i > 0 {
                let via = join_via(i);
                assert!(via < i, "node {i} must join through an earlier node");
                a.push("--join".into());
                a.push(format!("127.0.0.1:{}", nodes[via].cluster_port()));
            }
            a.extend(extra.iter().map(|s| s.to_string()));
            if !extra.iter().any(|f| f.starts_with("--cluster-secret")) {
                a.extend(["--cluster-secret".to_string(), TEST_SECRET.to_string()]);
            }
            let refs: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
            nodes.push(Server::start_with(&refs));
        }
        Cluster { nodes, n, r, w }
    }

    /// `size` nodes with `--n 3 --r 2 --w 2 --fsync everysec`, every node
    /// joining through node 0; waits until all agree.
    pub fn start(size: usize) -> Cluster {
        let c = Cluster::start_with(size, (3, 2, 2), &["--fsync", "everysec"], |_| 0);
        c.wait_converged(&(0..size).collect::<Vec<_>>(), CONVERGE_TIMEOUT);
        c
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// A fresh raw connection to node `i`.
    pub fn conn(&self, i: usize) -> RawConn {
        self.nodes[i].raw()
    }

    /// Runs one command on node `i` (new connection) and returns the reply.
    pub fn q(&self, i: usize, a: &[&str]) -> Reply {
        self.conn(i).cmd_str(a)
    }

    /// Runs one command on node `i`; panics on an error reply.
    pub fn ok(&self, i: usize, a: &[&str]) -> Reply {
        let r = self.q(i, a);
        if r.is_error() {
            panic!("{a:?} on {} failed: {r:?}", name(i));
        }
        r
    }

    pub fn members(&self, i: usize) -> Result<Vec<Member>, String> {
        parse_members(&self.q(i, &["DYN.MEMBERS"]))
    }

    pub fn ring(&self, i: usize) -> Result<BTreeMap<i64, Vec<String>>, String> {
        parse_ring(&self.q(i, &["DYN.RING"]))
    }

    pub fn hints(&self, i: usize) -> Result<BTreeMap<String, i64>, String> {
        parse_hints(&self.q(i, &["DYN.HINTS"]))
    }

    /// `INFO dynamo` of node `i` as a field map.
    pub fn info(&self, i: usize) -> Result<BTreeMap<String, String>, String> {
        parse_info(&self.q(i, &["INFO", "dynamo"]))
    }

    /// Sum of an integer `INFO dynamo` field over the given nodes.
    pub fn info_sum(&self, nodes: &[usize], field: &str) -> i64 {
        nodes
            .iter()
            .map(|&i| {
                let info = self.info(i).unwrap_or_else(|e| panic!("{}: {e}", name(i)));
                info_int(&info, field).unwrap_or_else(|e| panic!("{}: {e}", name(i)))
            })
            .sum()
    }

    /// `DYN.DEBUG LOCAL key` on node `i`.
    pub fn local(&self, i: usize, key: &str) -> Versions {
        let r = self.q(i, &["DYN.DEBUG", "LOCAL", key]);
        parse_versions(&r).unwrap_or_else(|e| panic!("DYN.DEBUG LOCAL {key} on {}: {e}", name(i)))
    }

    /// `DYN.GET key [R r]` on node `i`; `Err(text)` on an error reply.
    pub fn dyn_get(&self, i: usize, key: &str, r: Option<usize>) -> Result<Versions, String> {
        let rs = r.map(|r| r.to_string());
        let mut a = vec!["DYN.GET", key];
        if let Some(rs) = &rs {
            a.extend(["R", rs.as_str()]);
        }
        match self.q(i, &a) {
            Reply::Error(e) => Err(e),
            other => parse_versions(&other),
        }
    }

    /// Sends `DYN.DEBUG PARTITION names...` to node `i` (no names heals).
    pub fn partition(&self, i: usize, from: &[usize]) {
        let names: Vec<String> = from.iter().map(|&j| name(j)).collect();
        let mut a = vec!["DYN.DEBUG", "PARTITION"];
        a.extend(names.iter().map(|s| s.as_str()));
        let r = self.q(i, &a);
        assert_eq!(
            r,
            Reply::Simple("OK".into()),
            "{a:?} on {} should answer +OK",
            name(i)
        );
    }

    /// Cuts the nodes in `a` off from those in `b` (sends PARTITION to
    /// both sides, as the contract requires).
    pub fn cut(&self, a: &[usize], b: &[usize]) {
        for &i in a {
            self.partition(i, b);
        }
        for &j in b {
            self.partition(j, a);
        }
    }

    /// Heals every partition on the given nodes.
    pub fn heal(&self, nodes: &[usize]) {
        for &i in nodes {
            self.partition(i, &[]);
        }
    }

    /// Checks once that every node in `live` lists every node of the
    /// cluster with its client address, `expect_up` as "up" and the rest
    /// as "down", that none has a membership change still moving data, and
    /// that all of them report the same members and ring.
    pub fn check_view(&self, live: &[usize], expect_up: &[usize]) -> Result<(), String> {
        let mut first: Option<(usize, Vec<Member>, RingMap)> = None;
        for &i in live {
            let members = self.members(i)?;
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            let want: Vec<String> = (0..self.size()).map(name).collect();
            if names != want.iter().map(|s| s.as_str()).collect::<Vec<_>>() {
                return Err(format!(
                    "{} lists members {names:?}, want {want:?}",
                    name(i)
                ));
            }
            for (j, m) in members.iter().enumerate() {
                let addr = format!("127.0.0.1:{}", self.nodes[j].port());
                if m.addr != addr {
                    return Err(format!(
                        "{} lists {} at {:?}, want {addr:?}",
                        name(i),
                        m.name,
                        m.addr
                    ));
                }
                let want_status = if expect_up.contains(&j) { "up" } else { "down" };
                if m.status != want_status {
                    return Err(format!(
                        "{} sees {} as {:?}, want {want_status:?} (all rows: {members:?})",
                        name(i),
                        m.name,
                        m.status
                    ));
                }
            }
            // A membership change moves data before the ring switches:
            // converged means no partition is still moving.
            let info = self.info(i)?;
            if let Some(moving) = info.get("partitions_moving")
                && moving != "0"
            {
                return Err(format!("{} has {moving} partitions moving", name(i)));
            }
            let ring = self.ring(i)?;
            match &first {
                None => first = Some((i, members, ring)),
                Some((f, fm, fr)) => {
                    let strip = |ms: &[Member]| -> Vec<(String, String, i64)> {
                        ms.iter()
                            .map(|m| (m.name.clone(), m.addr.clone(), m.partitions))
                            .collect()
                    };
                    if strip(fm) != strip(&members) {
                        return Err(format!(
                            "{} and {} disagree on members: {fm:?} vs {members:?}",
                            name(*f),
                            name(i)
                        ));
                    }
                    if *fr != ring {
                        let diff: Vec<_> = fr
                            .iter()
                            .filter(|(p, l)| ring.get(p) != Some(l))
                            .take(5)
                            .map(|(p, l)| (p, l, ring.get(p)))
                            .collect();
                        return Err(format!(
                            "{} and {} report different rings ({} vs {} rows); first differences (partition, {}, {}): {diff:?}",
                            name(*f),
                            name(i),
                            fr.len(),
                            ring.len(),
                            name(*f),
                            name(i)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits until every node in `live` agrees on the members (all of
    /// `live` "up", the others "down") and on the ring.
    pub fn wait_converged(&self, live: &[usize], timeout: Duration) {
        wait_for(
            timeout,
            &format!(
                "nodes {:?} to agree on members (up: {:?}) and ring",
                live.iter().map(|&i| name(i)).collect::<Vec<_>>(),
                live.iter().map(|&i| name(i)).collect::<Vec<_>>()
            ),
            || self.check_view(live, live),
        );
    }

    /// Waits until node `i` sees exactly `up` as "up" and the others as
    /// "down" (members only, no ring comparison).
    pub fn wait_status(&self, i: usize, up: &[usize], timeout: Duration) {
        wait_for(
            timeout,
            &format!(
                "{} to see {:?} up and the rest down",
                name(i),
                up.iter().map(|&j| name(j)).collect::<Vec<_>>()
            ),
            || {
                let members = self.members(i)?;
                for (j, m) in members.iter().enumerate() {
                    let want = if up.contains(&j) { "up" } else { "down" };
                    if m.name != name(j) || m.status != want {
                        return Err(format!("want {} {want}, rows: {members:?}", name(j)));
                    }
                }
                if members.len() != self.size() {
                    return Err(format!("rows: {members:?}"));
                }
                Ok(())
            },
        );
    }

    /// Writes `SET key value` for every pair through node `i`, pipelined;
    /// returns the `(key, reply)` pairs that were not +OK.
    pub fn set_many(&self, i: usize, kvs: &[(String, String)]) -> Vec<(String, Reply)> {
        let cmds: Vec<_> = kvs.iter().map(|(k, v)| args(&["SET", k, v])).collect();
        let replies = pipeline(&mut self.conn(i), &cmds);
        kvs.iter()
            .zip(replies)
            .filter(|(_, r)| *r != Reply::Simple("OK".into()))
            .map(|((k, _), r)| (k.clone(), r))
            .collect()
    }

    /// Reads every key through node `i` (pipelined GET) and returns the
    /// mismatches as `(key, expected, got)`.
    pub fn check_gets(&self, i: usize, kvs: &[(String, String)]) -> Vec<(String, String, Reply)> {
        let cmds: Vec<_> = kvs.iter().map(|(k, _)| args(&["GET", k])).collect();
        let replies = pipeline(&mut self.conn(i), &cmds);
        kvs.iter()
            .zip(replies)
            .filter(|((_, v), r)| *r != Reply::Bulk(v.as_bytes().to_vec()))
            .map(|((k, v), r)| (k.clone(), v.clone(), r))
            .collect()
    }

    /// `DYN.DEBUG LOCAL` of every key on node `i`, pipelined.
    pub fn local_many(&self, i: usize, keys: &[&str]) -> Vec<Versions> {
        let cmds: Vec<_> = keys
            .iter()
            .map(|k| args(&["DYN.DEBUG", "LOCAL", k]))
            .collect();
        pipeline(&mut self.conn(i), &cmds)
            .iter()
            .zip(keys)
            .map(|(r, k)| {
                parse_versions(r)
                    .unwrap_or_else(|e| panic!("DYN.DEBUG LOCAL {k} on {}: {e}", name(i)))
            })
            .collect()
    }

    /// The union of the distinct members named in preference lists.
    pub fn ring_names(ring: &BTreeMap<i64, Vec<String>>) -> BTreeSet<String> {
        ring.values().flatten().cloned().collect()
    }

    /// SIGKILL node `i`.
    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// Starts node `i` again (same ports, data dir and flags).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, s) in self.nodes.iter().enumerate() {
                let log = s.stderr();
                let tail_from = log.len().saturating_sub(6000);
                let tail_from = (tail_from..log.len())
                    .find(|&k| log.is_char_boundary(k))
                    .unwrap_or(0);
                eprintln!(
                    "===== {} (port {}, cluster port {}) log tail =====\n{}",
                    name(i),
                    s.port(),
                    s.cluster_port(),
                    &log[tail_from..]
                );
            }
        }
    }
}

/// Panics with the first few entries when `items` is not empty.
pub fn assert_none<T: std::fmt::Debug>(items: &[T], what: &str) {
    assert!(
        items.is_empty(),
        "{what}: {} failures; first few: {:?}",
        items.len(),
        &items[..items.len().min(10)]
    );
}
