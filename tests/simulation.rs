//! Deterministic simulation of a dynkv cluster running the node's own code.
//!
//! Each seed boots 4–6 nodes of `ClusterKv<SimEnv>` — the production
//! `ClusterKv`, boot code, coordinator, replica service, gossip, failure
//! detector, hinted handoff, read repair and expiry sweeper, generic over
//! their environment — on a single-threaded tokio runtime with a paused
//! clock, over memory stores and a seeded network (see `sim/`). For 3 s of
//! simulated time clients SET, DYN.GET + DYN.PUT, DEL and GET through random
//! nodes while the network delays (1–30 ms), loses (0–8 %) and duplicates
//! (0–3 %) messages and splits in two, nodes are killed and restarted,
//! clocks are skewed (one node in four seeds far beyond `--max-offset`) and,
//! with W = 2, one node either runs `--fsync everysec` and loses its unsynced
//! tail in a crash, or has its disk replaced (it restarts empty under the
//! same name). Membership changes too: in about half the seeds a node
//! joins during the run, in some a node is told `DYN.LEAVE` (it hands its
//! partitions off and stops itself) and in some a node is killed for good
//! and removed with `DYN.LEAVE node` from another member (that seed's one
//! data-losing fault). Then faults stop, the membership change commits,
//! hints drain and full reads repair.
//!
//! Checked per seed (the disks of nodes that left do not count):
//! 1. no acknowledged write is lost: its value is still there, or a write
//!    whose context covered its dot superseded it; no dot names two writes;
//! 2. every preference-list replica holds the same object as the merge of
//!    everything in the cluster, and no hint is left;
//! 3. the membership settled: every remaining member runs, all agree on one
//!    ring generation, no change is under way, and every partition's
//!    replicas have equal Merkle roots;
//! 4. the same seed gives the same final disks and client log (every tenth
//!    seed is run twice).
//!
//! ```text
//! cargo test --release --test simulation                   # 200 seeds
//! SIM_SEEDS=5000 cargo test --release --test simulation    # more seeds
//! SIM_SEED=42 cargo test --release --test simulation -- --nocapture  # one seed
//! SIM_SEED=42 SIM_DUMP=key3 cargo test ...  # plus the client log and each node's copy of key3
//! SIM_SEED=42 SIM_LOG=dynkv=info cargo test ...  # plus the nodes' own logs
//! ```

mod sim;

use sim::check::{check, fingerprint};
use sim::params::Params;
use sim::world::{Stats, World};

struct Outcome {
    errors: Vec<String>,
    digest: u64,
    stats: Stats,
}

fn run_seed(seed: u64) -> Outcome {
    let params = Params::from_seed(seed);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build the simulation runtime: {e}"),
    };
    runtime.block_on(async move {
        let world = World::new(params);
        world.run().await;
        let errors = check(&world);
        if let Ok(key) = std::env::var("SIM_DUMP") {
            sim::check::dump(&world, key.as_bytes());
        }
        let digest = fingerprint(&world);
        let stats = world.stats.lock().clone();
        // Stop every process before the runtime goes away.
        for i in 0..world.params.nodes {
            world.kill(i, false);
        }
        Outcome {
            errors,
            digest,
            stats,
        }
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn simulated_cluster_keeps_acked_writes_and_converges() {
    let single = env_u64("SIM_SEED");
    if let Ok(filter) = std::env::var("SIM_LOG") {
        // The nodes' own logs (e.g. SIM_LOG=dynkv=debug) for replaying one seed.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let seeds: Vec<u64> = match single {
        Some(one) => vec![one],
        None => (0..env_u64("SIM_SEEDS").unwrap_or(200)).collect(),
    };
    let mut failures = Vec::new();
    let mut total = Stats::default();
    let mut lossy = 0;
    let (mut joins, mut leaves, mut removals) = (0, 0, 0);
    for &seed in &seeds {
        let first = run_seed(seed);
        let mut errors = first.errors;
        if seed % 10 == 0 || single.is_some() {
            let second = run_seed(seed);
            if second.digest != first.digest {
                errors.push(format!(
                    "nondeterministic: digest {:#x} then {:#x}",
                    first.digest, second.digest
                ));
            }
        }
        if single.is_some() {
            eprintln!("{:?}\n{:?}", Params::from_seed(seed), first.stats);
        }
        let p = Params::from_seed(seed);
        lossy += usize::from(p.lossy.is_some() || p.remove.is_some());
        joins += usize::from(p.late_join.is_some());
        leaves += usize::from(p.leave.is_some());
        removals += usize::from(p.remove.is_some());
        total.writes_acked += first.stats.writes_acked;
        total.writes_failed += first.stats.writes_failed;
        total.reads_ok += first.stats.reads_ok;
        total.reads_failed += first.stats.reads_failed;
        total.messages += first.stats.messages;
        total.dropped += first.stats.dropped;
        total.heal_rounds = total.heal_rounds.max(first.stats.heal_rounds);
        if !errors.is_empty() {
            failures.push((seed, errors));
        }
    }
    eprintln!(
        "simulation: {} seeds ({lossy} with a data-losing fault; {joins} with a join, {leaves} a leave, {removals} a removal): writes acked {}, failed {}, reads ok {} / failed {}, messages {} ({} dropped), max heal rounds {}",
        seeds.len(),
        total.writes_acked,
        total.writes_failed,
        total.reads_ok,
        total.reads_failed,
        total.messages,
        total.dropped,
        total.heal_rounds
    );
    assert!(total.writes_acked > 0, "no write was acknowledged");
    if !failures.is_empty() {
        let mut report = format!("{} of {} seeds failed\n", failures.len(), seeds.len());
        for (seed, errors) in failures.iter().take(5) {
            report.push_str(&format!(
                "seed {seed} (rerun: SIM_SEED={seed}) {:?}\n",
                Params::from_seed(*seed)
            ));
            for e in errors.iter().take(5) {
                report.push_str(&format!("  {e}\n"));
            }
        }
        panic!("{report}");
    }
}
