//! Deterministic discrete-event simulation of a dynkv cluster driven by the
//! pure core (`dynkv::core`: ring placement, sloppy-quorum `plan`,
//! `PutCore`/`GetCore`, dotted-version-vector `Object`s).
//!
//! Each seed builds a 5–7 node ring (Q = 64 or 256, N=3, R=2, W=2; W=1 for
//! every fourth seed) and runs 4 s of simulated client traffic — GETs, PUTs
//! with a read context, an empty context or a blind (coordinator) context,
//! some deletes — over a network that delays every message 1–50 ms and
//! loses 0–10 % of them, while nodes crash (stores survive, as with
//! `--fsync always`) and the network splits into two groups. Then faults
//! stop: every node restarts, hints are handed off, and "read everything"
//! passes with read repair run until nothing changes. Checked per seed:
//!
//! 1. no acknowledged write is lost (present with its own payload, or
//!    superseded by a write whose context covered it);
//! 2. every preference-list replica of every key holds the same object,
//!    equal to the merge of everything the cluster holds, and no hints remain;
//! 3. the same seed twice gives the same final stores, oracle and client log;
//! 4. a GET through every node returns the same winner.
//!
//! Time and randomness come only from the seed (`sim::sched`); all state
//! lives in `BTreeMap`s, so a failure reproduces exactly:
//!
//! ```text
//! cargo test --release --test simulation                   # 200 seeds
//! SIM_SEEDS=5000 cargo test --release --test simulation    # more seeds
//! SIM_SEED=42 cargo test --release --test simulation -- --nocapture  # one seed, traced
//! ```
//!
//! `simulated_cluster_with_fsync_everysec_node` (ignored) runs the same
//! scenarios with one node on `--fsync everysec` and per-key dot numbering:
//! it fails, which is how dot reuse after a crash was found. The node fixed
//! it with per-incarnation actor ids and one counter for all keys
//! (`DotIssuer` in src/node/local.rs); this model does not simulate that yet.
//! `cargo test --release --test simulation -- --ignored --nocapture`.

mod sim;

use dynkv::core::{NodeId, Object, Payload, VersionVector};
use sim::check::{check, fingerprint};
use sim::params::Params;
use sim::world::{Stats, World};

struct Outcome {
    params: Params,
    errors: Vec<String>,
    digest: u64,
    stats: Stats,
}

fn run_params(params: Params, trace: bool) -> Outcome {
    let mut world = World::new(params.clone());
    world.trace = trace;
    let mut errors = match world.run() {
        Ok(()) => Vec::new(),
        Err(e) => vec![e],
    };
    errors.extend(check(&world));
    Outcome {
        params,
        errors,
        digest: fingerprint(&world),
        stats: world.stats,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs every seed twice (3. determinism), checks the properties, prints a
/// summary, and panics with the first failing seeds and how to rerun them.
fn run_many(name: &str, params_for: fn(u64) -> Params) {
    let single = env_u64("SIM_SEED");
    let seeds: Vec<u64> = match single {
        Some(one) => vec![one],
        None => (0..env_u64("SIM_SEEDS").unwrap_or(200)).collect(),
    };
    let mut total = Stats::default();
    let mut failures = Vec::new();
    let mut w1_seeds = 0;
    for &seed in &seeds {
        let first = run_params(params_for(seed), single.is_some());
        let second = run_params(params_for(seed), false);
        let mut errors = first.errors;
        if first.digest != second.digest {
            errors.push(format!(
                "nondeterministic: digest {:#x} then {:#x}",
                first.digest, second.digest
            ));
        }
        if single.is_some() {
            eprintln!("{:?}\n{:?}", first.params, first.stats);
        }
        w1_seeds += usize::from(first.params.w == 1);
        total.add(&first.stats);
        if !errors.is_empty() {
            failures.push((seed, first.params, errors));
        }
    }
    eprintln!(
        "{name}: {} seeds ({w1_seeds} with W=1): writes acked {}, writes failed {}, \
         gets ok {} / failed {}, messages {} ({} dropped), forwarded puts {}, \
         hinted puts {}, handoffs {}, read repairs {}, max siblings {}, \
         max heal rounds {}",
        seeds.len(),
        total.puts_acked,
        total.puts_failed,
        total.gets_ok,
        total.gets_failed,
        total.msgs,
        total.dropped,
        total.forwards,
        total.hinted_puts,
        total.handoffs_done,
        total.repairs,
        total.max_siblings,
        total.heal_rounds,
    );
    assert!(total.puts_acked > 0, "{name}: no write was acknowledged");
    if !failures.is_empty() {
        let mut report = format!(
            "{name}: {} of {} seeds failed\n",
            failures.len(),
            seeds.len()
        );
        for (seed, params, errors) in failures.iter().take(5) {
            report.push_str(&format!(
                "seed {seed} (rerun with a trace: SIM_SEED={seed}) {params:?}\n"
            ));
            for e in errors.iter().take(5) {
                report.push_str(&format!("  {e}\n"));
            }
        }
        panic!("{report}");
    }
}

/// Every node fsyncs every write (`--fsync always`).
#[test]
fn simulated_cluster_keeps_acked_writes_and_converges() {
    run_many("simulation", Params::from_seed);
}

/// DESIGN.md §3.1 with the default `--fsync everysec`: W=2, one node loses
/// its last second of writes when it crashes. Fails today (see
/// `dot_numbering_needs_the_coordinators_full_history`): the crashed node,
/// as coordinator, numbers new writes from its rolled-back copy and reuses
/// dots it had already handed out; replicas then keep different writes
/// under one dot and never converge, and an acknowledged write disappears.
#[test]
#[ignore = "models the old per-key dot numbering; the node now issues per-incarnation dots (DotIssuer)"]
fn simulated_cluster_with_fsync_everysec_node() {
    run_many("everysec", Params::everysec_from_seed);
}

/// The contract behind the simulation's forwarding rule and behind the
/// ignored everysec test: `Object::update` numbers a new dot from the
/// coordinator's own copy, so that copy must hold every write the node ever
/// coordinated for the key. If it does not — the node is no replica of the
/// key, it coordinated as a fallback whose hint was later handed off, or a
/// crash rolled back writes not yet fsynced — the same dot names two
/// different writes, and replicas that saw them in different orders keep
/// different payloads under one dot for ever (merge thinks they agree).
#[test]
fn dot_numbering_needs_the_coordinators_full_history() {
    let n1 = NodeId::new("n1");
    let empty = VersionVector::new();
    // n1 coordinates "one" and replicates it to n2: acknowledged at W=2.
    let mut n1_copy = Object::new();
    let first = n1_copy.update(&empty, &n1, Payload::value("one"), 1);
    let n2_copy = n1_copy.clone();
    // n1 is killed before its next fsync: its copy rolls back to empty, and
    // a blind write through it (context = its own copy's) reuses the dot.
    let mut n1_copy = Object::new();
    let ctx = n1_copy.context.clone();
    let second = n1_copy.update(&ctx, &n1, Payload::value("two"), 2);
    assert_eq!(first, second, "one dot, two writes");
    // Either merge order keeps the local payload: no convergence, and each
    // replica has silently lost one of the writes.
    let mut at_n2 = n2_copy.clone();
    at_n2.merge(&n1_copy);
    let mut at_n1 = n1_copy.clone();
    at_n1.merge(&n2_copy);
    assert_eq!(at_n2, n2_copy);
    assert_eq!(at_n1, n1_copy);
    assert_ne!(at_n1, at_n2);
    assert!(at_n1.descends(&at_n2) && at_n2.descends(&at_n1));
}
