//! One simulated run: boots the nodes with the node's own boot code, drives
//! clients and the fault schedule, heals, and collects what the checker
//! needs.

use crate::sim::env::{FencedHints, FencedStore, Observer, SimClock, SimEnv};
use crate::sim::net::{HandlerFn, SimNet, cluster_addr, node_name};
use crate::sim::params::{Lossy, Params};
use bytes::Bytes;
use dynkv::core::{Member, Object, Payload, VersionVector};
use dynkv::kv::{AdminCommand, Change, Kv, ReadOptions, WriteOptions};
use dynkv::net::Blocklist;
use dynkv::net::Handler;
use dynkv::node::clock::NodeClock;
use dynkv::node::cluster::boot::{BootSettings, boot, local_kv, spawn_workers};
use dynkv::node::cluster::membership::STATE_RECORD;
use dynkv::node::cluster::service::Service;
use dynkv::node::cluster::{ClusterKv, NodeParts, Quorums, Timeouts};
use dynkv::node::env::{MemMeta, MetaStore};
use dynkv::store::FsyncPolicy;
use dynkv::store::hints::HintLimits;
use dynkv::store::memory::MemoryStore;
use dynkv::store::memory_hints::MemoryHints;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

/// The cluster's `--max-offset` in the simulation.
pub const MAX_OFFSET_MS: u64 = 500;

/// A node's disk: survives process kills, lost only when replaced.
pub struct Disk {
    pub store: Arc<MemoryStore>,
    pub hints: Arc<MemoryHints>,
    pub meta: Arc<MemMeta>,
    pub fsync: FsyncPolicy,
}

impl Disk {
    fn new(fsync: FsyncPolicy) -> Self {
        Self {
            store: Arc::new(MemoryStore::new_with(fsync)),
            hints: Arc::new(MemoryHints::new_with(
                fsync,
                HintLimits {
                    max_per_target: 100_000,
                    ttl_ms: 3_600_000,
                },
            )),
            meta: Arc::new(MemMeta::default()),
            fsync,
        }
    }
}

/// A running node process.
struct Process {
    stop: CancellationToken,
    alive: Arc<AtomicBool>,
    _workers: JoinSet<()>,
}

/// One client write, as the client saw it.
#[derive(Clone, Debug)]
pub struct WriteRec {
    pub key: Bytes,
    /// The unique value written (None: a delete).
    pub value: Option<Bytes>,
    /// The context a DYN.PUT sent (None: a blind SET / DEL).
    pub ctx: Option<VersionVector>,
    pub acked: bool,
}

#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub writes_acked: u64,
    pub writes_failed: u64,
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub messages: u64,
    pub dropped: u64,
    pub heal_rounds: u64,
}

pub struct World {
    pub params: Params,
    pub net: Arc<SimNet>,
    pub disks: Mutex<Vec<Disk>>,
    pub observer: Arc<Observer>,
    start: Instant,
    procs: Mutex<Vec<Option<Process>>>,
    pub writes: Mutex<Vec<WriteRec>>,
    pub log: Mutex<Vec<String>>,
    pub stats: Mutex<Stats>,
    /// Where each node stands in the membership schedule.
    pub phase: Mutex<Vec<Phase>>,
}

/// A node's place in the membership schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet: joins later.
    Pending,
    /// A member (running or crashed).
    Member,
    /// Left or removed: never runs again, and its disk no longer counts.
    Gone,
}

pub fn key_name(k: usize) -> Bytes {
    Bytes::from(format!("key{k}"))
}

impl World {
    pub fn new(params: Params) -> Arc<Self> {
        let lossy_everysec = match params.lossy {
            Some(Lossy::EverysecCrash { node, .. }) => Some(node),
            _ => None,
        };
        let disks = (0..params.nodes)
            .map(|i| {
                Disk::new(if Some(i) == lossy_everysec {
                    FsyncPolicy::Everysec
                } else {
                    FsyncPolicy::Always
                })
            })
            .collect();
        Arc::new(Self {
            net: SimNet::new(params.seed, params.nodes),
            disks: Mutex::new(disks),
            observer: Arc::new(Observer::default()),
            start: Instant::now(),
            procs: Mutex::new((0..params.nodes).map(|_| None).collect()),
            writes: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            stats: Mutex::new(Stats::default()),
            phase: Mutex::new(
                (0..params.nodes)
                    .map(|i| {
                        if params.late_join.is_some_and(|(n, _)| n == i) {
                            Phase::Pending
                        } else {
                            Phase::Member
                        }
                    })
                    .collect(),
            ),
            params,
        })
    }

    pub fn node(&self, i: usize) -> Option<Arc<ClusterKv<SimEnv>>> {
        self.net.state.lock().nodes[i].clone()
    }

    /// Starts node `i`'s process on its disk (the node's own boot code).
    pub async fn start_node(self: &Arc<Self>, i: usize, join: Option<String>) {
        let alive = Arc::new(AtomicBool::new(true));
        let (store, hints, meta, fsync) = {
            let disks = self.disks.lock();
            let d = &disks[i];
            (d.store.clone(), d.hints.clone(), d.meta.clone(), d.fsync)
        };
        let clock = Arc::new(NodeClock::new(
            Arc::new(SimClock {
                start: self.start,
                skew_ms: self.params.skews[i],
            }),
            MAX_OFFSET_MS,
        ));
        let fenced = Arc::new(FencedStore {
            inner: store.clone(),
            alive: alive.clone(),
            observer: self.observer.clone(),
        });
        let fenced_hints = Arc::new(FencedHints {
            inner: hints.clone(),
            alive: alive.clone(),
            observer: self.observer.clone(),
        });
        let name = node_name(i);
        let fresh_id = self.net.below(u64::MAX);
        let fsync_always = fsync == FsyncPolicy::Always;
        let local =
            match local_kv::<SimEnv>(fenced, meta.clone(), &name, fresh_id, fsync_always, clock)
                .await
            {
                Ok(l) => Arc::new(l),
                Err(e) => panic!("node {i} cannot open its store: {e}"),
            };
        let transport = self.net.transport(i);
        let parts = NodeParts::<SimEnv> {
            local,
            hints: fenced_hints,
            transport,
            meta,
            blocklist: Arc::new(Blocklist::new()),
            seed: self.net.below(u64::MAX),
        };
        let member = Member {
            client_addr: format!("127.0.0.1:{}", 7_000 + i),
            cluster_addr: cluster_addr(i).to_string(),
            cluster_client_addr: None,
        };
        let settings = BootSettings {
            name,
            member,
            join,
            partitions: self.params.partitions,
            quorums: Quorums {
                n: self.params.n,
                r: self.params.r,
                w: self.params.w,
            },
            timeouts: Timeouts::from_quorum(Duration::from_millis(300)),
        };
        let stop = CancellationToken::new();
        // The process exists from here: a kill during boot (a join still
        // retrying) stops it, as kill -9 would.
        self.procs.lock()[i] = Some(Process {
            stop: stop.clone(),
            alive: alive.clone(),
            _workers: JoinSet::new(),
        });
        let kv = match boot(
            parts,
            settings,
            MAX_OFFSET_MS,
            self.net.below(u64::MAX),
            &stop,
        )
        .await
        {
            _ if stop.is_cancelled() => return,
            Ok(kv) => kv,
            Err(e) => panic!("node {i} did not boot: {e}"),
        };
        let handler_kv = kv.clone();
        let handler: HandlerFn = Arc::new(move |from, req| {
            let service = Service(handler_kv.clone());
            Box::pin(async move { service.handle(from, req).await })
        });
        {
            let mut st = self.net.state.lock();
            st.nodes[i] = Some(kv.clone());
            st.handlers[i] = Some(handler);
        }
        let mut workers = spawn_workers(&kv, &stop);
        if fsync == FsyncPolicy::Everysec {
            let (stop, alive) = (stop.clone(), alive.clone());
            workers.spawn(async move {
                loop {
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => return,
                        _ = sleep(Duration::from_secs(1)) => {}
                    }
                    if alive.load(Ordering::SeqCst) {
                        let _ = dynkv::store::ReplicaStore::sync(&*store).await;
                        hints.sync();
                    }
                }
            });
        }
        // A node that has left the cluster stops itself (its handoff
        // worker fires `stop`): the process exits for good.
        {
            let (world, stop, alive) = (self.clone(), stop.clone(), alive.clone());
            tokio::spawn(async move {
                stop.cancelled().await;
                if alive.load(Ordering::SeqCst) {
                    world.kill(i, false);
                    world.phase.lock()[i] = Phase::Gone;
                    world.log.lock().push(format!("n{i} left"));
                    trace(&format!("n{i} left the cluster and stopped"));
                }
            });
        }
        if let Some(p) = self.procs.lock()[i].as_mut() {
            p._workers = workers;
        }
    }

    pub fn phase(&self, i: usize) -> Phase {
        self.phase.lock()[i]
    }

    /// Nodes whose disks count: members and nodes yet to join.
    pub fn counted(&self) -> Vec<usize> {
        (0..self.params.nodes)
            .filter(|i| self.phase(*i) != Phase::Gone)
            .collect()
    }

    /// A running member other than `not`, picked at random.
    fn other_running(&self, not: usize) -> Option<usize> {
        let alive: Vec<usize> = self
            .alive_nodes()
            .into_iter()
            .filter(|j| *j != not)
            .collect();
        (!alive.is_empty()).then(|| alive[self.net.below(alive.len() as u64) as usize])
    }

    /// The member node `i` joins through: a running one that is not
    /// scheduled to leave (a join keeps retrying the one seed it was given).
    fn join_seed(&self, i: usize) -> usize {
        let leaving = |j: usize| {
            self.params.leave.is_some_and(|(n, _)| n == j)
                || self.params.remove.is_some_and(|(n, _, _)| n == j)
        };
        let alive = self.alive_nodes();
        let staying: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|j| *j != i && !leaving(*j))
            .collect();
        match staying.first() {
            Some(j) => *j,
            None => (0..self.params.nodes)
                .find(|j| *j != i && !leaving(*j))
                .unwrap_or((i + 1) % self.params.nodes),
        }
    }

    /// Sends `DYN.LEAVE [target]` to node `via` until a node accepts it
    /// (it may be down, cut off, or not yet see the target as down).
    async fn leave_until_accepted(self: &Arc<Self>, via: Option<usize>, target: usize) {
        let name = node_name(target).to_string();
        for _ in 0..200 {
            let (on, arg) = match via {
                Some(v) => (Some(v), None),
                None => (self.other_running(target), Some(name.clone())),
            };
            if let Some(on) = on {
                let arg2 = arg.clone();
                let r = self
                    .on_node(on, move |kv| async move {
                        kv.admin(AdminCommand::Leave(arg2)).await
                    })
                    .await;
                match r {
                    Some(Ok(_)) => {
                        self.log.lock().push(format!("leave {name} via n{on}"));
                        trace(&format!("DYN.LEAVE {arg:?} accepted by n{on}"));
                        return;
                    }
                    Some(Err(e)) if e.to_string().contains("already") => return,
                    _ => {}
                }
            }
            sleep(Duration::from_millis(250)).await;
        }
        panic!("no node accepted DYN.LEAVE for n{target} in 50 s");
    }

    /// Whether node `i`'s process runs (it may still be booting).
    fn running(&self, i: usize) -> bool {
        self.procs.lock()[i].is_some()
    }

    /// kill -9 of node `i`: with `lose_tail`, its disk loses what was not
    /// fsynced.
    pub fn kill(&self, i: usize, lose_tail: bool) {
        self.net.kill(i);
        if let Some(p) = self.procs.lock()[i].take() {
            p.alive.store(false, Ordering::SeqCst);
            p.stop.cancel();
        }
        if lose_tail {
            let disks = self.disks.lock();
            disks[i].store.crash();
            let _ = disks[i].hints.crash();
        }
        self.log.lock().push(format!("kill n{i}"));
    }

    pub fn alive_nodes(&self) -> Vec<usize> {
        let st = self.net.state.lock();
        (0..st.nodes.len())
            .filter(|i| st.nodes[*i].is_some())
            .collect()
    }

    /// Runs one op on node `i` as a task of its process (a kill aborts it:
    /// the client sees a closed connection).
    async fn on_node<T, F, Fut>(&self, i: usize, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<ClusterKv<SimEnv>>) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        let kv = self.node(i)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let fut = f(kv);
        self.net.spawn_on(i, async move {
            let _ = tx.send(fut.await);
        });
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()
            .and_then(Result::ok)
    }

    async fn client(self: Arc<Self>, c: usize, until: Instant) {
        let mut req = 0u64;
        while Instant::now() < until {
            sleep(Duration::from_millis(5 + self.net.below(40))).await;
            let alive = self.alive_nodes();
            if alive.is_empty() {
                continue;
            }
            let i = alive[self.net.below(alive.len() as u64) as usize];
            let key = key_name(self.net.below(self.params.keys as u64) as usize);
            req += 1;
            let value = Bytes::from(format!("c{c}r{req}"));
            let roll = self.net.below(100);
            if roll < 45 {
                let (k, v) = (key.clone(), value.clone());
                let r = self
                    .on_node(i, move |kv| async move {
                        kv.overwrite(
                            k,
                            Change::Write {
                                data: v,
                                expires_at_ms: None,
                                flags: 0,
                            },
                        )
                        .await
                    })
                    .await;
                self.record(i, key, Some(value), None, matches!(r, Some(Ok(()))));
            } else if roll < 70 {
                let k = key.clone();
                let got = self
                    .on_node(i, move |kv| async move {
                        kv.get(k, ReadOptions::default()).await
                    })
                    .await;
                let Some(Ok(obj)) = got else {
                    self.stats.lock().reads_failed += 1;
                    continue;
                };
                let ctx = obj.context.clone();
                let (k, v, c2) = (key.clone(), value.clone(), ctx.clone());
                let r = self
                    .on_node(i, move |kv| async move {
                        kv.put(
                            k,
                            c2,
                            Payload::Value {
                                data: v,
                                expires_at_ms: None,
                            },
                            WriteOptions::default(),
                        )
                        .await
                    })
                    .await;
                self.record(i, key, Some(value), Some(ctx), matches!(r, Some(Ok(()))));
            } else if roll < 80 {
                let k = key.clone();
                let r = self
                    .on_node(
                        i,
                        move |kv| async move { kv.overwrite(k, Change::Delete).await },
                    )
                    .await;
                self.record(i, key, None, None, matches!(r, Some(Ok(()))));
            } else {
                let k = key.clone();
                let got = self
                    .on_node(i, move |kv| async move {
                        kv.get(k, ReadOptions::default()).await
                    })
                    .await;
                let mut stats = self.stats.lock();
                match got {
                    Some(Ok(_)) => stats.reads_ok += 1,
                    _ => stats.reads_failed += 1,
                }
            }
        }
    }

    fn record(
        &self,
        via: usize,
        key: Bytes,
        value: Option<Bytes>,
        ctx: Option<VersionVector>,
        acked: bool,
    ) {
        let at = (Instant::now() - self.start).as_millis();
        {
            let mut stats = self.stats.lock();
            if acked {
                stats.writes_acked += 1;
            } else {
                stats.writes_failed += 1;
            }
        }
        self.log
            .lock()
            .push(format!("t={at} n{via} {key:?}={value:?} acked={acked}"));
        self.writes.lock().push(WriteRec {
            key,
            value,
            ctx,
            acked,
        });
    }

    /// Runs the whole scenario.
    pub async fn run(self: &Arc<Self>) {
        let p = self.params.clone();
        {
            let mut st = self.net.state.lock();
            st.max_delay_ms = p.max_delay_ms;
        }
        let first = (0..p.nodes)
            .find(|i| self.phase(*i) == Phase::Member)
            .unwrap_or(0);
        self.start_node(first, None).await;
        for i in 0..p.nodes {
            if i != first && self.phase(i) == Phase::Member {
                self.start_node(i, Some(cluster_addr(first).to_string()))
                    .await;
            }
        }
        trace("booted");
        // Let gossip spread the membership.
        sleep(Duration::from_secs(3)).await;
        trace("gossiped");
        {
            let mut st = self.net.state.lock();
            st.loss_per_mille = p.loss_per_mille;
            st.dup_per_mille = p.dup_per_mille;
        }
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(p.active_ms);
        let mut clients = JoinSet::new();
        for c in 0..p.clients {
            clients.spawn(self.clone().client(c, until));
        }
        // The fault schedule.
        let mut events: Vec<(u64, Event)> = Vec::new();
        for &(node, at, until) in &p.crashes {
            events.push((at, Event::Kill(node, false)));
            events.push((until, Event::Start(node, false)));
        }
        for (at, until, groups) in &p.partitions_cut {
            events.push((*at, Event::Cut(Some(groups.clone()))));
            events.push((*until, Event::Cut(None)));
        }
        match &p.lossy {
            Some(Lossy::EverysecCrash { node, at, until }) => {
                events.push((*at, Event::Kill(*node, true)));
                events.push((*until, Event::Start(*node, false)));
            }
            Some(Lossy::DiskReplaced { node, at, until }) => {
                events.push((*at, Event::Kill(*node, false)));
                events.push((*at, Event::ReplaceDisk(*node)));
                events.push((*until, Event::Start(*node, true)));
            }
            None => {}
        }
        if let Some((node, at)) = p.late_join {
            events.push((at, Event::Join(node)));
        }
        if let Some((node, at)) = p.leave {
            events.push((at, Event::Leave(node)));
        }
        if let Some((node, at, remove_at)) = p.remove {
            events.push((at, Event::KillForGood(node)));
            events.push((remove_at, Event::Remove(node)));
        }
        events.sort_by_key(|(at, _)| *at);
        let mut restarts = JoinSet::new();
        for (at, event) in events {
            sleep_until(t0 + Duration::from_millis(at)).await;
            trace(&format!("t={at} {event:?}"));
            // A restart may wait for a partition to heal (a join retries):
            // it must not hold up the rest of the schedule.
            let world = self.clone();
            restarts.spawn(async move { world.apply(event).await });
        }
        while restarts.join_next().await.is_some() {}
        trace("faults done");
        while clients.join_next().await.is_some() {}
        trace("clients done");
        self.heal().await;
        trace("healed");
    }

    async fn apply(self: &Arc<Self>, event: Event) {
        let phase = self.phase(match &event {
            Event::Kill(i, _)
            | Event::Start(i, _)
            | Event::ReplaceDisk(i)
            | Event::Join(i)
            | Event::Leave(i)
            | Event::KillForGood(i)
            | Event::Remove(i) => *i,
            Event::Cut(_) => 0,
        });
        match event {
            Event::Kill(i, lose) => {
                if self.running(i) && phase == Phase::Member {
                    self.kill(i, lose);
                }
            }
            Event::Join(i) => {
                let via = self.join_seed(i);
                self.phase.lock()[i] = Phase::Member;
                self.log.lock().push(format!("join n{i} via n{via}"));
                self.start_node(i, Some(cluster_addr(via).to_string()))
                    .await;
            }
            Event::Leave(i) => {
                if phase == Phase::Member {
                    self.leave_until_accepted(Some(i), i).await;
                }
            }
            Event::KillForGood(i) => {
                if self.running(i) {
                    self.kill(i, false);
                }
                self.phase.lock()[i] = Phase::Gone;
            }
            Event::Remove(i) => self.leave_until_accepted(None, i).await,
            Event::Start(i, via_join) => {
                if !self.running(i) && phase == Phase::Member {
                    // As on a real command line, every node but the founder
                    // has --join; it matters only while no state is saved
                    // (a node killed before its join completed).
                    let unsaved = self.disks.lock()[i].meta.read(STATE_RECORD).is_none();
                    let join =
                        (via_join || unsaved).then(|| cluster_addr(self.join_seed(i)).to_string());
                    self.start_node(i, join).await;
                    self.log.lock().push(format!("start n{i}"));
                }
            }
            Event::ReplaceDisk(i) => {
                self.disks.lock()[i] = Disk::new(FsyncPolicy::Always);
                self.log.lock().push(format!("replace disk of n{i}"));
            }
            Event::Cut(groups) => {
                self.net.state.lock().groups = groups;
            }
        }
    }

    /// Faults stop: every node runs, the network is clean; hints drain and
    /// full reads (R = N) repair every replica.
    async fn heal(self: &Arc<Self>) {
        {
            let mut st = self.net.state.lock();
            st.groups = None;
            st.loss_per_mille = 0;
            st.dup_per_mille = 0;
        }
        for i in 0..self.params.nodes {
            if !self.running(i) && self.phase(i) == Phase::Member {
                // A replaced disk that never got to join joins now.
                let fresh = self.disks.lock()[i].meta.read(STATE_RECORD).is_none();
                let join = fresh.then(|| cluster_addr(self.join_seed(i)).to_string());
                self.start_node(i, join).await;
            }
        }
        sleep(Duration::from_secs(4)).await;
        let n = self.params.n.min(self.params.nodes);
        for round in 0..8u64 {
            let alive = self.alive_nodes();
            for k in 0..self.params.keys {
                let i = alive[(k + round as usize) % alive.len()];
                let key = key_name(k);
                let _ = self
                    .on_node(i, move |kv| async move {
                        kv.get(key, ReadOptions { r: Some(n) }).await
                    })
                    .await;
            }
            sleep(Duration::from_secs(3)).await;
            self.stats.lock().heal_rounds = round + 1;
            if crate::sim::check::converged(self) {
                break;
            }
        }
        let st = self.net.state.lock();
        let mut stats = self.stats.lock();
        stats.messages = st.messages;
        stats.dropped = st.dropped;
    }

    /// Every node's stored copy of `key` (None for a node with none).
    pub fn stored(&self, i: usize, key: &[u8]) -> Object {
        let disks = self.disks.lock();
        dynkv::store::ReplicaStore::get(&*disks[i].store, key)
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

#[derive(Debug)]
enum Event {
    Kill(usize, bool),
    Start(usize, bool),
    ReplaceDisk(usize),
    Cut(Option<Vec<u8>>),
    /// A new node boots and joins through a running member.
    Join(usize),
    /// `DYN.LEAVE` on the node itself.
    Leave(usize),
    /// kill -9; the node never comes back.
    KillForGood(usize),
    /// `DYN.LEAVE node` for the killed node, on another member.
    Remove(usize),
}

fn trace(what: &str) {
    if std::env::var("SIM_SEED").is_ok() {
        eprintln!("[sim] {what}");
    }
}
