//! Gossip and ring placement at scale, with the node's own code: many
//! [`Membership`]s (the production type, each with its own state, failure
//! detector and clock) run the production gossip round
//! ([`gossip::round`], answered by [`gossip::serve`]) over an in-process
//! exchange that postcard-encodes every request and response, as the
//! transport does, and counts their bytes.
//!
//! CI runs 200 nodes; `GOSSIP_NODES=1000` (see `scripts/gossip-scale.sh`)
//! runs the full size. The ring test always joins the 1,001st node at
//! Q = 16384 (placement alone is cheap).
//!
//! Model: every node runs one round per simulated second, at its own fixed
//! phase within the second (a seeded random order), and an exchange
//! completes before the next node's tick, as on a LAN where a round trip
//! takes well under a millisecond.

use dynkv::core::{ClusterState, Member, NodeId, Request, Response, Ring, StateDigest};
use dynkv::net::RpcError;
use dynkv::node::clock::NodeClock;
use dynkv::node::cluster::gossip::{self, GossipNode};
use dynkv::node::cluster::membership::Membership;
use dynkv::node::env::{Clock, MemMeta};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

const Q: usize = 16384;
const N: usize = 3;

fn node_count() -> usize {
    std::env::var("GOSSIP_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn name(i: usize) -> NodeId {
    NodeId::new(&format!("node-{i:04}#{:012x}", i * 7919))
}

fn member(i: usize) -> Member {
    Member {
        client_addr: format!("127.0.{}.{}:6379", i / 250, i % 250 + 1),
        cluster_addr: format!("127.0.{}.{}:16379", i / 250, i % 250 + 1),
        cluster_client_addr: None,
    }
}

/// The state of a cluster of `s` nodes grown one join at a time, as
/// seeds admit nodes in production (`ClusterState::with_member`).
fn grown_state(s: usize) -> ClusterState {
    let mut state =
        ClusterState::founding("scale".into(), name(0), member(0), Q, N).expect("founding state");
    for i in 1..s {
        state = state.with_member(name(i), member(i)).expect("join");
    }
    state
}

/// Simulated time: every node reads the same second counter.
struct SimTime(Arc<AtomicU64>);

impl Clock for SimTime {
    fn physical_ms(&self) -> u64 {
        1_700_000_000_000 + self.0.load(Ordering::Relaxed)
    }
}

/// One simulated node: the production [`Membership`] and clock.
struct SimNode {
    membership: Membership,
    clock: NodeClock,
    rng: Mutex<StdRng>,
    net: Weak<Net>,
}

/// The in-process exchange between nodes; counts what crosses it.
#[derive(Default)]
struct Net {
    nodes: Mutex<HashMap<NodeId, Arc<SimNode>>>,
    bytes: AtomicU64,
    messages: AtomicU64,
    full_states: AtomicU64,
}

fn carries_state(req: &Request) -> bool {
    matches!(req, Request::Gossip { .. } | Request::GossipPush { .. })
}

fn reply_carries_state(resp: &Response) -> bool {
    matches!(
        resp,
        Response::Gossip { .. } | Response::GossipDelta { state: Some(_), .. }
    )
}

impl Net {
    fn encode<T: serde::Serialize>(&self, value: &T) -> Result<Vec<u8>, RpcError> {
        let raw = postcard::to_allocvec(value).map_err(|e| RpcError::Encode(e.to_string()))?;
        self.bytes.fetch_add(raw.len() as u64, Ordering::Relaxed);
        self.messages.fetch_add(1, Ordering::Relaxed);
        Ok(raw)
    }
}

impl GossipNode for SimNode {
    fn membership(&self) -> &Membership {
        &self.membership
    }

    fn clock(&self) -> &NodeClock {
        &self.clock
    }

    fn random_index(&self, len: usize) -> usize {
        self.rng.lock().random_range(0..len)
    }

    fn call(
        &self,
        peer: &NodeId,
        req: Request,
    ) -> impl Future<Output = Result<Response, RpcError>> + Send {
        let peer = peer.clone();
        async move {
            let net = self
                .net
                .upgrade()
                .ok_or_else(|| RpcError::Connect("network gone".into()))?;
            let target = net
                .nodes
                .lock()
                .get(&peer)
                .cloned()
                .ok_or_else(|| RpcError::Connect(format!("{peer} unknown")))?;
            if carries_state(&req) {
                net.full_states.fetch_add(1, Ordering::Relaxed);
            }
            let wire = net.encode(&req)?;
            let req: Request =
                postcard::from_bytes(&wire).map_err(|e| RpcError::Decode(e.to_string()))?;
            // As the service does: hearing from a peer proves it alive.
            target.membership.mark_up(self.membership.me());
            let resp = gossip::serve(&*target, req).await;
            if reply_carries_state(&resp) {
                net.full_states.fetch_add(1, Ordering::Relaxed);
            }
            let wire = net.encode(&resp)?;
            let resp: Response =
                postcard::from_bytes(&wire).map_err(|e| RpcError::Decode(e.to_string()))?;
            self.membership.mark_up(&peer);
            Ok(resp)
        }
    }

    fn save(&self) -> impl Future<Output = ()> + Send {
        self.membership.save();
        std::future::ready(())
    }
}

struct Sim {
    net: Arc<Net>,
    /// Tick order within a second (each node's fixed phase).
    order: Vec<Arc<SimNode>>,
    time: Arc<AtomicU64>,
    rng: StdRng,
}

impl Sim {
    fn new(state: &ClusterState, seed: u64) -> Sim {
        let net = Arc::new(Net::default());
        let time = Arc::new(AtomicU64::new(0));
        let mut sim = Sim {
            net,
            order: Vec::new(),
            time,
            rng: StdRng::seed_from_u64(seed),
        };
        for id in state.member_ids() {
            sim.add(id, state.clone());
        }
        sim
    }

    /// A node holding `state`, ticking at a random phase.
    fn add(&mut self, id: NodeId, state: ClusterState) -> Arc<SimNode> {
        let seed = self.rng.random_range(0..u64::MAX);
        let node = Arc::new(SimNode {
            membership: Membership::new(id.clone(), state, Arc::new(MemMeta::default()), 500),
            clock: NodeClock::new(Arc::new(SimTime(self.time.clone())), 500),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            net: Arc::downgrade(&self.net),
        });
        self.net.nodes.lock().insert(id, node.clone());
        let at = self.rng.random_range(0..=self.order.len());
        self.order.insert(at, node.clone());
        node
    }

    /// One simulated second: every node runs the production round once.
    async fn round(&mut self) {
        for node in &self.order {
            gossip::round(&**node).await;
        }
        self.time.fetch_add(1000, Ordering::Relaxed);
    }

    /// Distinct states held, by digest.
    fn distinct_states(&self) -> usize {
        self.order
            .iter()
            .map(|n| n.membership.digest())
            .collect::<BTreeSet<_>>()
            .len()
    }

    fn counters(&self) -> (u64, u64, u64) {
        (
            self.net.bytes.load(Ordering::Relaxed),
            self.net.messages.load(Ordering::Relaxed),
            self.net.full_states.load(Ordering::Relaxed),
        )
    }
}

/// The encoded size of a ring as it was before the compact encoding: one
/// name per partition.
fn legacy_ring_bytes(ring: &Ring) -> usize {
    let owners: Vec<NodeId> = (0..ring.partitions())
        .map(|p| ring.owner(p).clone())
        .collect();
    postcard::to_allocvec(&owners).expect("encode").len()
}

fn encoded_len<T: serde::Serialize>(v: &T) -> usize {
    postcard::to_allocvec(v).expect("encode").len()
}

/// A join reaches every one of S+1 nodes within 2·log2(S+1) rounds of the
/// production gossip round, and agreeing nodes exchange only digests.
#[tokio::test(flavor = "current_thread")]
async fn a_join_converges_within_two_log2_rounds() {
    let s = node_count();
    let started = Instant::now();
    let state = grown_state(s);
    let grown_in = started.elapsed();
    let mut sim = Sim::new(&state, 0x5eed_0001);
    assert_eq!(sim.distinct_states(), 1);

    // Steady state: everyone agrees, so rounds cost digests only.
    let steady_rounds = 3u64;
    let (b0, m0, f0) = sim.counters();
    for _ in 0..steady_rounds {
        sim.round().await;
    }
    let (b1, m1, f1) = sim.counters();
    assert_eq!(f1 - f0, 0, "agreeing nodes sent full states");
    assert_eq!(sim.distinct_states(), 1);
    let steady_per_node = (b1 - b0) as f64 / (s as f64 * steady_rounds as f64);

    // The join: a seed admits the newcomer exactly as `Request::Join` is
    // served (Membership::change with ClusterState::with_member).
    let seed_node = sim.order[sim.order.len() / 2].clone();
    let newcomer = name(s);
    let (admitted, changed) = seed_node
        .membership
        .change(|current| current.with_member(newcomer.clone(), member(s)))
        .expect("admit");
    assert!(changed);
    seed_node.membership.save();
    sim.add(newcomer.clone(), admitted.clone());
    let total = s + 1;
    let bound = (2.0 * (total as f64).log2()).floor() as usize;

    let joined_at = Instant::now();
    let mut rounds = 0;
    let mut spread = Vec::new();
    while sim.distinct_states() > 1 {
        assert!(
            rounds < bound,
            "{} distinct states after {rounds} rounds (bound {bound})",
            sim.distinct_states()
        );
        sim.round().await;
        rounds += 1;
        let knowing = sim
            .order
            .iter()
            .filter(|n| n.membership.digest() == StateDigest::of(&admitted))
            .count();
        spread.push(knowing);
    }
    let converged_in = joined_at.elapsed();
    let (b2, m2, f2) = sim.counters();

    // Everyone holds the admitted state, read back from each node.
    for node in &sim.order {
        let held = node.membership.snapshot();
        assert_eq!(
            held,
            admitted,
            "{} holds another state",
            node.membership.me()
        );
        assert_eq!(held.members.len(), total);
        assert_eq!(target_ring(&held).members().len(), total);
        assert!(target_ring(&held).members().contains(&newcomer));
    }

    let converging_per_node = (b2 - b1) as f64 / (total as f64 * rounds as f64);
    let full_state = encoded_len(&admitted);
    let full_exchange_compact = encoded_len(&Request::Gossip {
        state: admitted.clone(),
        hlc_ms: u64::MAX,
    }) + encoded_len(&Response::Gossip {
        state: admitted.clone(),
        physical_ms: u64::MAX,
        hlc_ms: u64::MAX,
    });
    let legacy_state = full_state - encoded_len(target_ring(&admitted))
        + legacy_ring_bytes(target_ring(&admitted));
    let full_exchange_legacy = full_exchange_compact + 2 * (legacy_state - full_state);

    println!("gossip scale: {total} nodes, Q={Q}, N={N}");
    println!(
        "  grew the {s}-node state by {} joins in {grown_in:?}",
        s - 1
    );
    println!("  join converged in {rounds} rounds (bound {bound}), {converged_in:?} wall");
    println!("  nodes holding the new state after each round: {spread:?}");
    println!(
        "  steady state: {steady_per_node:.1} bytes per node per round, {} messages",
        m1 - m0
    );
    println!(
        "  converging: {converging_per_node:.0} bytes per node per round, {} messages, {} carried a full state",
        m2 - m1,
        f2 - f1
    );
    println!("  one full state: {full_state} bytes (legacy ring encoding: {legacy_state})");
    println!(
        "  full-state exchange per node per round: {full_exchange_compact} bytes (legacy ring encoding: {full_exchange_legacy})"
    );

    assert!(rounds <= bound);
    // A digest round is a few dozen bytes each way.
    assert!(
        steady_per_node < 128.0,
        "steady state costs {steady_per_node} bytes per node per round"
    );
    // While a change spreads, nodes send full states only where they differ.
    assert!(
        converging_per_node < full_exchange_compact as f64 / 2.0,
        "converging costs {converging_per_node} bytes per node per round, full exchange {full_exchange_compact}"
    );
    // The compact ring is at most two bytes a partition plus the owner table.
    assert!(encoded_len(target_ring(&admitted)) < 2 * Q + 64 * total);
}

/// Two nodes admitted at once by two different seeds (same version, two
/// different states): every node ends with both, in the one state that
/// `ClusterState::merge` computes the same everywhere, within the bound.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_joins_through_two_seeds_converge() {
    let s = node_count();
    let state = grown_state(s);
    let mut sim = Sim::new(&state, 0x5eed_0002);
    let mut admitted = Vec::new();
    for (k, seed_at) in [(0, s / 3), (1, 2 * s / 3)] {
        let seed_node = sim.order[seed_at].clone();
        let (next, changed) = seed_node
            .membership
            .change(|current| current.with_member(name(s + k), member(s + k)))
            .expect("admit");
        assert!(changed);
        admitted.push(next);
    }
    assert_eq!(admitted[0].version, admitted[1].version);
    let expected = admitted[0].merge(&admitted[1]).expect("merge");
    assert_eq!(expected, admitted[1].merge(&admitted[0]).expect("merge"));
    for (k, next) in admitted.iter().enumerate() {
        sim.add(name(s + k), next.clone());
    }
    let total = s + 2;
    let bound = (2.0 * (total as f64).log2()).floor() as usize;
    let (b0, _, f0) = sim.counters();
    let mut rounds = 0;
    while sim.distinct_states() > 1 {
        assert!(
            rounds < bound,
            "{} distinct states after {rounds} rounds (bound {bound})",
            sim.distinct_states()
        );
        sim.round().await;
        rounds += 1;
    }
    let (b1, _, f1) = sim.counters();
    for node in &sim.order {
        let held = node.membership.snapshot();
        assert_eq!(
            held,
            expected,
            "{} holds another state",
            node.membership.me()
        );
        assert_eq!(target_ring(&held).members().len(), total);
    }
    println!(
        "concurrent joins: {total} nodes converged in {rounds} rounds (bound {bound}), {:.0} bytes per node per round, {} full states sent",
        (b1 - b0) as f64 / (total as f64 * rounds as f64),
        f1 - f0
    );
}

/// Preference lists of every partition.
fn preference_lists(ring: &Ring) -> Vec<Vec<NodeId>> {
    (0..ring.partitions())
        .map(|p| ring.preference_list(p, N))
        .collect()
}

/// Adding the 1,001st node at Q = 16384 moves about Q/1001 partitions (and
/// about N·Q/1001 replicas) and leaves every node within ±10 % of Q/S.
#[test]
fn the_1001st_node_moves_its_share_and_keeps_balance() {
    let s = 1000;
    let started = Instant::now();
    let before = grown_state(s);
    let grown_in = started.elapsed();
    let started = Instant::now();
    let after = before.with_member(name(s), member(s)).expect("join");
    let join_in = started.elapsed();
    let (old, new) = (target_ring(&before), target_ring(&after));

    let moved = (0..Q).filter(|&p| old.owner(p) != new.owner(p)).count();
    let (old_pl, new_pl) = (preference_lists(old), preference_lists(new));
    let replicas_moved: usize = old_pl
        .iter()
        .zip(&new_pl)
        .map(|(o, n)| n.iter().filter(|m| !o.contains(m)).count())
        .sum();
    let ideal = Q as f64 / (s + 1) as f64;
    let ideal_replicas = (N * Q) as f64 / (s + 1) as f64;
    let own = new.ownership();
    let (lo, hi) = (
        own.values().copied().min().unwrap_or(0),
        own.values().copied().max().unwrap_or(0),
    );
    let target = Q as f64 / (s + 1) as f64;

    println!("ring movement: Q={Q}, N={N}, S {s} -> {}", s + 1);
    println!(
        "  grew the {s}-node ring by joins in {grown_in:?}; the join rebalanced in {join_in:?}"
    );
    println!("  primary owners moved: {moved} (ideal Q/(S+1) = {ideal:.2})");
    println!("  replicas moved: {replicas_moved} (ideal N·Q/(S+1) = {ideal_replicas:.2})");
    println!("  partitions per node: {lo}..={hi} (Q/S = {target:.2})");

    assert!(moved as f64 <= 1.1 * ideal, "{moved} partitions moved");
    // Every moved partition went to the newcomer.
    for p in 0..Q {
        if old.owner(p) != new.owner(p) {
            assert_eq!(new.owner(p), &name(s), "partition {p}");
        }
    }
    assert!(
        replicas_moved as f64 <= 1.1 * ideal_replicas,
        "{replicas_moved} replicas moved"
    );
    assert_eq!(own.len(), s + 1);
    for (node, &count) in &own {
        assert!(
            (count as f64 - target).abs() <= 0.1 * target,
            "{node} owns {count}, Q/S = {target:.2}"
        );
    }
    // Preference lists stay N distinct nodes.
    for pl in &new_pl {
        assert_eq!(pl.iter().collect::<BTreeSet<_>>().len(), N);
    }
}

/// The ring a state is heading for: a join opens a transition, and its next
/// ring is committed only once partitions have streamed (no data here).
fn target_ring(state: &ClusterState) -> &Ring {
    state.transition.as_ref().map_or(&state.ring, |t| &t.next)
}
