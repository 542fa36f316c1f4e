//! What a seed decides about a run: cluster shape, quorum sizes, network
//! quality and the fault schedule.

use crate::sim::node::Ix;
use crate::sim::sched::Rng;

/// Everything a seed decides about a run.
#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    pub nodes: usize,
    pub partitions: usize,
    pub n: usize,
    pub r: usize,
    pub w: usize,
    pub keys: usize,
    pub clients: usize,
    /// Probability (per mille) that a node-to-node message is lost.
    pub loss_per_mille: u64,
    pub max_delay_ms: u64,
    /// How long clients run (and faults happen) before the heal phase.
    pub active_ms: u64,
    pub op_timeout_ms: u64,
    pub client_timeout_ms: u64,
    pub tick_ms: u64,
    /// One node running `--fsync everysec` (synced every 10 ticks); all
    /// others fsync every write.
    pub everysec_node: Option<Ix>,
    pub faults: Vec<Fault>,
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// kill -9 of `node` at `at`, restarted at `until`.
    Crash { node: Ix, at: u64, until: u64 },
    /// Nodes in different groups cannot exchange messages during `at..until`.
    Partition {
        at: u64,
        until: u64,
        groups: Vec<u8>,
    },
}

impl Params {
    /// Derives a run from a seed: 5–7 nodes, Q ∈ {64, 256}, N=3 R=2, W=2
    /// (W=1 for every fourth seed), 0–10% loss, 1–50 ms delay, and a
    /// handful of crashes and partitions while clients are active.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let nodes = 5 + rng.index(3);
        let active_ms = 4_000;
        let mut faults = Vec::new();
        for _ in 0..rng.range(1, 6) {
            let at = rng.range(100, active_ms - 500);
            let until = at + rng.range(100, 1_200);
            faults.push(Fault::Crash {
                node: rng.index(nodes),
                at,
                until,
            });
        }
        // Partitions one after another (they would end each other otherwise).
        let mut t = rng.range(0, 600);
        while t + 300 < active_ms && rng.chance(700) {
            let until = t + rng.range(200, 900);
            let groups = (0..nodes).map(|_| rng.below(2) as u8).collect();
            faults.push(Fault::Partition {
                at: t,
                until,
                groups,
            });
            t = until + rng.range(50, 600);
        }
        Params {
            seed,
            nodes,
            partitions: if rng.below(2) == 0 { 64 } else { 256 },
            n: 3,
            r: 2,
            w: if seed % 4 == 3 { 1 } else { 2 },
            keys: 6 + rng.index(10),
            clients: 4 + rng.index(8),
            loss_per_mille: rng.range(0, 100),
            max_delay_ms: 50,
            active_ms,
            op_timeout_ms: 200,
            client_timeout_ms: 600,
            tick_ms: 100,
            everysec_node: None,
            faults,
        }
    }

    /// As `from_seed`, with W=2 and one node on `--fsync everysec` that
    /// crashes (again) mid-run: DESIGN.md §3.1 says acknowledged writes
    /// must survive the kill -9 of any one node when W >= 2.
    pub fn everysec_from_seed(seed: u64) -> Self {
        let mut p = Params::from_seed(seed);
        let mut rng = Rng::new(seed ^ 0xE5E5);
        let node = rng.index(p.nodes);
        p.w = 2;
        p.everysec_node = Some(node);
        let at = rng.range(1_000, p.active_ms - 1_000);
        p.faults.push(Fault::Crash {
            node,
            at,
            until: at + rng.range(50, 500),
        });
        p
    }
}
