//! What a seed decides about a run: cluster shape, quorums, network
//! quality, clock skews and the fault schedule.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The one fault per run that may lose data on a node (DESIGN §3.1's
/// fault model: with W = 2, at most one per replica set until repaired).
#[derive(Clone, Debug)]
pub enum Lossy {
    /// The node runs `--fsync everysec` and is killed at `at`, losing the
    /// writes since its last fsync; restarted at `until`.
    EverysecCrash { node: usize, at: u64, until: u64 },
    /// The node's disk is replaced at `at`: it restarts empty under the
    /// same name at `until`, joining through another member.
    DiskReplaced { node: usize, at: u64, until: u64 },
}

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
    pub loss_per_mille: u32,
    pub dup_per_mille: u32,
    pub max_delay_ms: u64,
    pub active_ms: u64,
    /// Kills without data loss (`--fsync always` nodes): (node, at, until).
    pub crashes: Vec<(usize, u64, u64)>,
    /// Network splits: (at, until, group of each node).
    pub partitions_cut: Vec<(u64, u64, Vec<u8>)>,
    pub lossy: Option<Lossy>,
    /// Each node's clock skew (ms).
    pub skews: Vec<i64>,
    /// A node that is not part of the cluster at the start and joins at
    /// this time (node, at).
    pub late_join: Option<(usize, u64)>,
    /// A node told `DYN.LEAVE` at this time (node, at): it hands its
    /// partitions off and stops itself.
    pub leave: Option<(usize, u64)>,
    /// A node killed for good at `at` and removed with `DYN.LEAVE node`
    /// from another member at `remove_at` (node, at, remove_at). Its disk
    /// is lost, so it is this seed's one data-losing fault.
    pub remove: Option<(usize, u64, u64)>,
}

impl Params {
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_D15C_0DE5_0001);
        let nodes = rng.random_range(4..=6usize);
        let active_ms = 3_000;
        let w = if seed % 4 == 3 { 1 } else { 2 };
        let lossy_node = rng.random_range(0..nodes);
        // Membership changes: each node takes part in at most one, and at
        // least N = 3 members remain at the end.
        let mut changed: Vec<usize> = Vec::new();
        let pick = |rng: &mut StdRng, changed: &mut Vec<usize>| loop {
            let node = rng.random_range(0..nodes);
            if !changed.contains(&node) {
                changed.push(node);
                return node;
            }
        };
        let late_join = (rng.random_range(0..2) == 0).then(|| {
            let node = pick(&mut rng, &mut changed);
            (node, rng.random_range(200..active_ms - 1_000))
        });
        let leave = (nodes > 3 && rng.random_range(0..5) < 2).then(|| {
            let node = pick(&mut rng, &mut changed);
            (node, rng.random_range(200..active_ms - 800))
        });
        let remove =
            (nodes - usize::from(leave.is_some()) > 3 && w == 2 && rng.random_range(0..10) < 3)
                .then(|| {
                    let node = pick(&mut rng, &mut changed);
                    let at = rng.random_range(200..active_ms - 1_500);
                    (node, at, at + rng.random_range(600..1_200))
                });
        let lossy = if w == 2
            && remove.is_none()
            && !changed.contains(&lossy_node)
            && !seed.is_multiple_of(3)
        {
            let at = rng.random_range(300..active_ms - 800);
            let until = at + rng.random_range(100..700);
            Some(if rng.random_range(0..2) == 0 {
                Lossy::EverysecCrash {
                    node: lossy_node,
                    at,
                    until,
                }
            } else {
                Lossy::DiskReplaced {
                    node: lossy_node,
                    at,
                    until,
                }
            })
        } else {
            None
        };
        let mut crashes = Vec::new();
        for _ in 0..rng.random_range(0..4) {
            let node = rng.random_range(0..nodes);
            if lossy.is_some() && node == lossy_node {
                continue;
            }
            let at = rng.random_range(100..active_ms - 400);
            crashes.push((node, at, at + rng.random_range(100..1_000)));
        }
        let mut partitions_cut = Vec::new();
        let mut t = rng.random_range(0..600);
        while t + 300 < active_ms && rng.random_range(0..10) < 6 {
            let until = t + rng.random_range(200..800);
            let groups = (0..nodes).map(|_| rng.random_range(0..2u8)).collect();
            partitions_cut.push((t, until, groups));
            t = until + rng.random_range(50..500);
        }
        let mut skews: Vec<i64> = (0..nodes).map(|_| rng.random_range(-100..=100)).collect();
        if rng.random_range(0..4) == 0 {
            // One node far off: it must refuse to coordinate writes.
            let node = rng.random_range(0..nodes);
            let off = rng.random_range(600..3_000);
            skews[node] = if rng.random_range(0..2) == 0 {
                off
            } else {
                -off
            };
        }
        Params {
            seed,
            nodes,
            partitions: 64,
            n: 3,
            r: 2,
            w,
            keys: rng.random_range(6..16),
            clients: rng.random_range(4..10),
            loss_per_mille: rng.random_range(0..80),
            dup_per_mille: rng.random_range(0..30),
            max_delay_ms: rng.random_range(1..30),
            active_ms,
            crashes,
            partitions_cut,
            lossy,
            skews,
            late_join,
            leave,
            remove,
        }
    }
}
