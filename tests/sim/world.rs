//! The simulated cluster: the event loop, the lossy network with
//! partitions and crashes, the clients, the fault/heal scenario, and the
//! oracle that records every write for the property checks. What a node
//! does with a request is in `coordinator.rs`.
//!
//! Protocol modelled (DESIGN.md §1):
//! - A client sends each request to a random node. A GET is coordinated by
//!   that node. A PUT is coordinated by a preference-list node: the receiver
//!   itself if it is one, else it forwards to the first one it believes up
//!   (see `forward_put` for why the coordinator must be a primary).
//! - The coordinator plans with `plan(ring.walk(p), N, is_up)` over its own
//!   failure-detector view, applies a PUT locally, sends the whole object to
//!   the other targets (fallbacks keep it as a hint), keeps hints for
//!   `local_hints`, and answers at W acks / R replies.
//! - A GET read-repairs `stale_replicas()` once all targets answered or the
//!   timeout fired.
//! - Failure detection is local: a peer is down for a node once a request to
//!   it timed out, and up again as soon as any message from it arrives.
//! - Every tick a node pings the peers it thinks are down and, every third
//!   tick, hands its hints to owners it thinks are up; a hint is deleted
//!   when the owner acknowledges a copy that contains it.

use crate::sim::node::{Ix, Key, Node, Origin};
use crate::sim::params::{Fault, Params};
use crate::sim::proto::{ClientReq, Msg, PutCtx, Reply};
use crate::sim::sched::{Queue, Rng};
use bytes::Bytes;
use dynkv::core::{Dot, NodeId, Payload, Ring, Sibling, VersionVector, ring_hash};
use std::collections::BTreeMap;

pub(crate) enum Event {
    NodeMsg {
        from: Ix,
        to: Ix,
        msg: Msg,
    },
    FromClient {
        to: Ix,
        req: ClientReq,
    },
    ToClient {
        client: usize,
        req: u64,
        reply: Reply,
    },
    Tick {
        node: Ix,
        incarnation: u64,
    },
    OpTimeout {
        node: Ix,
        incarnation: u64,
        op: u64,
    },
    ClientWake {
        client: usize,
    },
    ClientTimeout {
        client: usize,
        req: u64,
    },
    Crash(Ix),
    Restart(Ix),
    Groups(Vec<u8>),
}

/// One write as its coordinator applied it (the oracle's record).
#[derive(Clone, Debug)]
pub struct WriteRec {
    pub key: Key,
    pub dot: Dot,
    pub payload: Payload,
    /// The context the write superseded.
    pub ctx: VersionVector,
    /// The client received the ack.
    pub acked: bool,
}

/// What a client saw, in order: the "ack log" the determinism check hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    PutOk(usize),
    PutFailed,
    GetOk(usize),
    GetFailed,
    Timeout,
}

#[derive(Default)]
struct Client {
    next_req: u64,
    outstanding: Option<u64>,
    /// The outstanding request is a PUT (a timeout then counts as a failed write).
    outstanding_put: bool,
    /// Context of this client's last successful GET per key.
    last_ctx: BTreeMap<Key, VersionVector>,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub msgs: u64,
    pub dropped: u64,
    pub puts_acked: u64,
    pub puts_failed: u64,
    pub gets_ok: u64,
    pub gets_failed: u64,
    pub forwards: u64,
    pub hinted_puts: u64,
    pub repairs: u64,
    pub handoffs_done: u64,
    pub max_siblings: usize,
    pub heal_rounds: u64,
}

impl Stats {
    /// Sums counters, keeps maxima.
    pub fn add(&mut self, s: &Stats) {
        self.msgs += s.msgs;
        self.dropped += s.dropped;
        self.puts_acked += s.puts_acked;
        self.puts_failed += s.puts_failed;
        self.gets_ok += s.gets_ok;
        self.gets_failed += s.gets_failed;
        self.forwards += s.forwards;
        self.hinted_puts += s.hinted_puts;
        self.repairs += s.repairs;
        self.handoffs_done += s.handoffs_done;
        self.max_siblings = self.max_siblings.max(s.max_siblings);
        self.heal_rounds = self.heal_rounds.max(s.heal_rounds);
    }
}

pub struct World {
    pub p: Params,
    pub(crate) rng: Rng,
    pub(crate) q: Queue<Event>,
    pub ring: Ring,
    pub ids: Vec<NodeId>,
    pub(crate) ix: BTreeMap<NodeId, Ix>,
    pub nodes: Vec<Node>,
    pub(crate) groups: Vec<u8>,
    pub(crate) loss: u64,
    clients: Vec<Client>,
    pub(crate) clients_active: bool,
    pub keys: Vec<Key>,
    pub writes: Vec<WriteRec>,
    pub log: Vec<(usize, u64, Outcome)>,
    /// Final probe answers: key -> winner seen through each coordinator.
    pub probes: BTreeMap<Key, Vec<(Ix, Option<Sibling>)>>,
    pub stats: Stats,
    /// Print writes, acks, crashes and restarts as they happen.
    pub trace: bool,
}

impl World {
    pub fn new(p: Params) -> Self {
        let ids: Vec<NodeId> = (0..p.nodes)
            .map(|i| NodeId::new(&format!("n{i}")))
            .collect();
        let ring = Ring::new(p.partitions, &ids, p.n).expect("valid ring");
        World {
            rng: Rng::new(p.seed),
            q: Queue::new(),
            ring,
            ix: ids
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, id)| (id, i))
                .collect(),
            nodes: (0..p.nodes)
                .map(|i| Node::new(p.nodes, p.everysec_node != Some(i)))
                .collect(),
            groups: vec![0; p.nodes],
            loss: p.loss_per_mille,
            clients: (0..p.clients).map(|_| Client::default()).collect(),
            clients_active: true,
            keys: (0..p.keys)
                .map(|i| Bytes::from(format!("key{i}")))
                .collect(),
            writes: Vec::new(),
            log: Vec::new(),
            probes: BTreeMap::new(),
            stats: Stats::default(),
            trace: false,
            ids,
            p,
        }
    }

    pub fn walk(&self, key: &Key) -> Vec<NodeId> {
        self.ring.walk(self.ring.partition_of(ring_hash(key)))
    }

    pub fn preference_list(&self, key: &Key) -> Vec<Ix> {
        self.walk(key)
            .iter()
            .take(self.p.n)
            .map(|id| self.ix[id])
            .collect()
    }

    // ---------------------------------------------------------------- run

    /// Active phase with faults, then heal; returns Err if the cluster did
    /// not become quiescent.
    pub fn run(&mut self) -> Result<(), String> {
        for f in self.p.faults.clone() {
            match f {
                Fault::Crash { node, at, until } => {
                    self.q.at(at, Event::Crash(node));
                    self.q.at(until, Event::Restart(node));
                }
                Fault::Partition { at, until, groups } => {
                    self.q.at(at, Event::Groups(groups));
                    self.q.at(until, Event::Groups(vec![0; self.p.nodes]));
                }
            }
        }
        for node in 0..self.p.nodes {
            let offset = self.rng.below(self.p.tick_ms);
            self.q.at(
                offset,
                Event::Tick {
                    node,
                    incarnation: 0,
                },
            );
        }
        for client in 0..self.p.clients {
            let offset = self.rng.below(20);
            self.q.at(offset, Event::ClientWake { client });
        }
        self.run_until(self.p.active_ms);
        self.heal()
    }

    /// Faults stop: every node up, no partition, no loss, no new client
    /// requests. Hints drain, then "read everything" passes with read
    /// repair run until one finds nothing to repair and no hint is left.
    fn heal(&mut self) -> Result<(), String> {
        self.clients_active = false;
        self.loss = 0;
        self.groups = vec![0; self.p.nodes];
        for node in 0..self.p.nodes {
            if !self.nodes[node].alive {
                self.restart(node);
            }
        }
        // Fault events scheduled past the active phase are skipped from
        // here on (`run_until_filtered`).
        let t = self.q.now() + 2_000;
        self.run_until_filtered(t);
        for round in 1..=10 {
            self.stats.heal_rounds = round;
            let repairs = self.stats.repairs;
            for k in 0..self.keys.len() {
                let key = self.keys[k].clone();
                let to = self.rng.index(self.p.nodes);
                self.q.after(
                    1,
                    Event::FromClient {
                        to,
                        req: ClientReq::Get {
                            origin: Origin::Sweep,
                            key,
                        },
                    },
                );
            }
            let t = self.q.now() + 1_000;
            self.run_until_filtered(t);
            let hints: usize = self.nodes.iter().map(Node::hint_count).sum();
            if self.stats.repairs == repairs && hints == 0 {
                // Quiescent: ask every node, as coordinator, for every key.
                for k in 0..self.keys.len() {
                    for to in 0..self.p.nodes {
                        let key = self.keys[k].clone();
                        self.q.after(
                            1,
                            Event::FromClient {
                                to,
                                req: ClientReq::Get {
                                    origin: Origin::Probe,
                                    key,
                                },
                            },
                        );
                    }
                }
                let t = self.q.now() + 1_000;
                self.run_until_filtered(t);
                return Ok(());
            }
        }
        Err(format!(
            "not quiescent after 10 read-repair rounds ({} hints left)",
            self.nodes.iter().map(Node::hint_count).sum::<usize>()
        ))
    }

    fn run_until(&mut self, until: u64) {
        while let Some(ev) = self.q.pop_until(until) {
            self.handle(ev);
        }
    }

    /// As `run_until`, but fault events left over from the active phase
    /// (restarts and partition ends after it) are skipped.
    fn run_until_filtered(&mut self, until: u64) {
        while let Some(ev) = self.q.pop_until(until) {
            if matches!(ev, Event::Crash(_) | Event::Restart(_) | Event::Groups(_)) {
                continue;
            }
            self.handle(ev);
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::NodeMsg { from, to, msg } => {
                if !self.nodes[to].alive || self.groups[from] != self.groups[to] {
                    self.stats.dropped += 1;
                    return;
                }
                // Failure detection: hearing from a peer means it is up.
                self.nodes[to].up[from] = true;
                self.on_msg(to, from, msg);
            }
            Event::FromClient { to, req } => {
                if self.nodes[to].alive {
                    self.on_client_req(to, req);
                }
            }
            Event::ToClient { client, req, reply } => self.on_reply(client, req, reply),
            Event::Tick { node, incarnation } => {
                if self.nodes[node].alive && self.nodes[node].incarnation == incarnation {
                    self.on_tick(node);
                }
            }
            Event::OpTimeout {
                node,
                incarnation,
                op,
            } => {
                if self.nodes[node].alive && self.nodes[node].incarnation == incarnation {
                    self.on_timeout(node, op);
                }
            }
            Event::ClientWake { client } => self.client_next(client),
            Event::ClientTimeout { client, req } => {
                if self.clients[client].outstanding == Some(req) {
                    self.client_done(client, req, Outcome::Timeout);
                }
            }
            Event::Crash(node) => {
                if self.nodes[node].alive {
                    self.nodes[node].crash();
                    self.log_event(format!(
                        "crash {} (fsync always: {})",
                        self.ids[node], self.nodes[node].fsync_always
                    ));
                }
            }
            Event::Restart(node) => {
                if !self.nodes[node].alive {
                    self.restart(node);
                    self.log_event(format!("restart {}", self.ids[node]));
                }
            }
            Event::Groups(groups) => self.groups = groups,
        }
    }

    pub(crate) fn log_event(&self, what: String) {
        if self.trace {
            eprintln!("{:>6} ms  {what}", self.q.now());
        }
    }

    fn restart(&mut self, node: Ix) {
        self.nodes[node].restart();
        let incarnation = self.nodes[node].incarnation;
        let offset = self.rng.below(self.p.tick_ms);
        self.q.after(offset, Event::Tick { node, incarnation });
    }

    // ------------------------------------------------------------ network

    /// Node-to-node send: lost with the current probability, else delayed
    /// 1..=max_delay ms. Partitions and dead receivers are checked on arrival.
    pub(crate) fn send(&mut self, from: Ix, to: Ix, msg: Msg) {
        self.stats.msgs += 1;
        if self.rng.chance(self.loss) {
            self.stats.dropped += 1;
            return;
        }
        let delay = self.rng.range(1, self.p.max_delay_ms);
        self.q.after(delay, Event::NodeMsg { from, to, msg });
    }

    /// Client links are reliable (a dead receiver still drops the request):
    /// loss between nodes is what exercises the quorum logic.
    pub(crate) fn reply(&mut self, client: usize, req: u64, reply: Reply) {
        let delay = self.rng.range(1, self.p.max_delay_ms);
        self.q.after(delay, Event::ToClient { client, req, reply });
    }

    // ------------------------------------------------------------ clients

    fn client_next(&mut self, client: usize) {
        if !self.clients_active {
            return;
        }
        // A few hot keys, so writes contend and siblings appear.
        let k = if self.rng.chance(500) {
            self.rng.index(3.min(self.keys.len()))
        } else {
            self.rng.index(self.keys.len())
        };
        let key = self.keys[k].clone();
        let c = &mut self.clients[client];
        c.next_req += 1;
        let req = c.next_req;
        c.outstanding = Some(req);
        c.outstanding_put = false;
        let request = if self.rng.chance(400) {
            ClientReq::Get {
                origin: Origin::Client { client, req },
                key,
            }
        } else {
            let roll = self.rng.below(10);
            let ctx = match roll {
                0..=4 => PutCtx::Given(c.last_ctx.get(&key).cloned().unwrap_or_default()),
                5..=6 => PutCtx::Given(VersionVector::new()),
                _ => PutCtx::Blind,
            };
            let payload = if self.rng.chance(100) {
                Payload::Tombstone
            } else {
                Payload::value(format!("c{client}r{req}"))
            };
            c.outstanding_put = true;
            ClientReq::Put {
                client,
                req,
                key,
                ctx,
                payload,
            }
        };
        let to = self.rng.index(self.p.nodes);
        let delay = self.rng.range(1, self.p.max_delay_ms);
        self.q.after(delay, Event::FromClient { to, req: request });
        self.q.after(
            self.p.client_timeout_ms,
            Event::ClientTimeout { client, req },
        );
    }

    fn on_reply(&mut self, client: usize, req: u64, reply: Reply) {
        if self.clients[client].outstanding != Some(req) {
            return; // answered after the client gave up: not an ack
        }
        let outcome = match reply {
            Reply::PutOk { write } => {
                self.writes[write].acked = true;
                self.log_event(format!("client {client} got the ack of write #{write}"));
                Outcome::PutOk(write)
            }
            Reply::PutFailed => Outcome::PutFailed,
            Reply::GetOk { key, obj } => {
                let siblings = obj.siblings.len();
                self.clients[client].last_ctx.insert(key, obj.context);
                Outcome::GetOk(siblings)
            }
            Reply::GetFailed => Outcome::GetFailed,
        };
        self.client_done(client, req, outcome);
    }

    fn client_done(&mut self, client: usize, req: u64, outcome: Outcome) {
        match outcome {
            Outcome::PutOk(_) => self.stats.puts_acked += 1,
            Outcome::PutFailed => self.stats.puts_failed += 1,
            Outcome::GetOk(_) => self.stats.gets_ok += 1,
            Outcome::GetFailed => self.stats.gets_failed += 1,
            Outcome::Timeout if self.clients[client].outstanding_put => self.stats.puts_failed += 1,
            Outcome::Timeout => self.stats.gets_failed += 1,
        }
        self.log.push((client, req, outcome));
        self.clients[client].outstanding = None;
        let think = self.rng.range(1, 20);
        self.q.after(think, Event::ClientWake { client });
    }
}
