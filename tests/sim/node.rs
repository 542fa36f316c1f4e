//! One simulated node's state: what survives a crash (the replica store and
//! the hint store, as with `--fsync always`) and what does not (the failure
//! detector's view and the requests it is coordinating).

use bytes::Bytes;
use dynkv::core::{GetCore, Object, PutCore};
use std::collections::{BTreeMap, BTreeSet};

pub type Key = Bytes;
/// Nodes are numbered `0..nodes`; `World::ids` maps them to `NodeId`s.
pub type Ix = usize;

/// Who asked for a GET, so the coordinator knows where its answer goes.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A client operation: the reply goes back over the client link.
    Client { client: usize, req: u64 },
    /// The heal phase's "read everything" pass: only read repair matters.
    Sweep,
    /// The final check that every coordinator returns the same winner.
    Probe,
}

/// A PUT this node coordinates.
pub struct PendingPut {
    pub client: usize,
    pub req: u64,
    /// Index of the write in `World::writes` (the oracle).
    pub write: usize,
    pub core: PutCore,
    /// Targets that have not acked yet (failed at the timeout).
    pub waiting: BTreeSet<Ix>,
    pub replied: bool,
}

/// A GET this node coordinates. It answers at R replies but keeps listening
/// until every target answered or the timeout fired, so read repair sees
/// as many replicas as possible (Riak's get FSM does the same).
pub struct PendingGet {
    pub origin: Origin,
    pub key: Key,
    pub core: GetCore,
    /// Every target and the owner it stands in for (`None` = a primary).
    pub targets: Vec<(Ix, Option<Ix>)>,
    pub waiting: BTreeSet<Ix>,
    pub replied: bool,
}

pub struct Node {
    pub alive: bool,
    /// `--fsync always`: every write is durable before it is acknowledged.
    /// Otherwise (`everysec`) a crash loses what arrived since the last sync.
    pub fsync_always: bool,
    synced: (BTreeMap<Key, Object>, BTreeMap<Ix, BTreeMap<Key, Object>>),
    /// Bumped at every crash so timers of the old process are ignored.
    pub incarnation: u64,
    /// Durable: key -> replica object (this node is a primary for the key).
    pub store: BTreeMap<Key, Object>,
    /// Durable: intended owner -> key -> object held on its behalf.
    pub hints: BTreeMap<Ix, BTreeMap<Key, Object>>,
    /// Volatile failure-detector view: `up[peer]`.
    pub up: Vec<bool>,
    pub puts: BTreeMap<u64, PendingPut>,
    pub gets: BTreeMap<u64, PendingGet>,
    pub next_op: u64,
    pub ticks: u64,
}

impl Node {
    pub fn new(nodes: usize, fsync_always: bool) -> Self {
        Node {
            alive: true,
            fsync_always,
            synced: Default::default(),
            incarnation: 0,
            store: BTreeMap::new(),
            hints: BTreeMap::new(),
            up: vec![true; nodes],
            puts: BTreeMap::new(),
            gets: BTreeMap::new(),
            next_op: 0,
            ticks: 0,
        }
    }

    /// kill -9: in-flight coordination and the peer view are gone, the
    /// stores stay as of their last fsync.
    pub fn crash(&mut self) {
        if !self.fsync_always {
            (self.store, self.hints) = self.synced.clone();
        }
        self.alive = false;
        self.incarnation += 1;
        self.puts.clear();
        self.gets.clear();
    }

    /// A fresh process over the old stores: it believes every peer is up
    /// until a request times out.
    pub fn restart(&mut self) {
        self.alive = true;
        self.up.iter_mut().for_each(|u| *u = true);
    }

    /// The background fsync of `--fsync everysec`.
    pub fn sync(&mut self) {
        if !self.fsync_always {
            self.synced = (self.store.clone(), self.hints.clone());
        }
    }

    /// Merges a replica object in: into the store for a primary, into the
    /// hint store when standing in for `hint_for`.
    pub fn apply(&mut self, key: &Key, obj: &Object, hint_for: Option<Ix>) {
        let slot = match hint_for {
            None => self.store.entry(key.clone()).or_default(),
            Some(owner) => self
                .hints
                .entry(owner)
                .or_default()
                .entry(key.clone())
                .or_default(),
        };
        slot.merge(obj);
    }

    /// What this node answers to a replica GET: its store copy as a primary;
    /// as a fallback, everything it holds for the key on anyone's behalf
    /// (the reader's view of who is down may differ from the writer's).
    pub fn read(&self, key: &Key, as_fallback: bool) -> Object {
        let mut obj = self.store.get(key).cloned().unwrap_or_default();
        if as_fallback {
            for hinted in self.hints.values().filter_map(|m| m.get(key)) {
                obj.merge(hinted);
            }
        }
        obj
    }

    pub fn hint_count(&self) -> usize {
        self.hints.values().map(BTreeMap::len).sum()
    }

    pub fn op_id(&mut self) -> u64 {
        self.next_op += 1;
        self.next_op
    }
}
