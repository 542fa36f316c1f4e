//! Conditional operations racing through different nodes of a healthy
//! 3-node cluster (N=3, R=2, W=2) have exactly one winner: each round,
//! one client per node fires at the same instant
//!
//! - `SET key id NX` → exactly one `OK`, and every node then reads that id;
//! - `WATCH ctr; GET ctr; MULTI; INCR ctr; EXEC` → exactly one EXEC runs,
//!   so the counter ends at the number of rounds.
//!
//! `DYNKV_RACE_ROUNDS` rounds each (200 in CI; 1,000 in the full run of
//! `scripts/datatypes-full.sh`).

mod common;

use common::cluster::Cluster;
use std::sync::{Arc, Barrier};

fn rounds() -> usize {
    std::env::var("DYNKV_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn client(c: &Cluster, i: usize) -> redis::Connection {
    let port = c.conn(i).stream().peer_addr().expect("peer").port();
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .expect("client")
        .get_connection()
        .expect("connect")
}

/// Runs `race(connection, round, thread)` on one thread per node, all
/// starting each round together; returns each round's outcomes.
fn race<T: Send + 'static>(
    c: &Cluster,
    rounds: usize,
    race: impl Fn(&mut redis::Connection, usize, usize, &Barrier) -> T + Send + Sync + 'static,
) -> Vec<Vec<T>> {
    let nodes = c.size();
    let barrier = Arc::new(Barrier::new(nodes));
    let race = Arc::new(race);
    let threads: Vec<_> = (0..nodes)
        .map(|i| {
            let mut con = client(c, i);
            let (barrier, race) = (barrier.clone(), race.clone());
            std::thread::spawn(move || {
                (0..rounds)
                    .map(|round| {
                        barrier.wait();
                        race(&mut con, round, i, &barrier)
                    })
                    .collect::<Vec<T>>()
            })
        })
        .collect();
    let per_thread: Vec<Vec<T>> = threads
        .into_iter()
        .map(|t| t.join().expect("racer panicked"))
        .collect();
    let mut per_round: Vec<Vec<T>> = (0..rounds).map(|_| Vec::new()).collect();
    for outcomes in per_thread {
        for (round, outcome) in outcomes.into_iter().enumerate() {
            per_round[round].push(outcome);
        }
    }
    per_round
}

#[test]
fn set_nx_through_three_nodes_has_one_winner_per_round() {
    if common::is_real_redis() {
        return;
    }
    let c = Cluster::start(3);
    let n = rounds();
    let outcomes = race(&c, n, |con, round, me, _| {
        let won: Option<String> = redis::cmd("SET")
            .arg(format!("race:nx:{round}"))
            .arg(me)
            .arg("NX")
            .query(con)
            .expect("SET NX");
        won.map(|_| me)
    });
    let mut check = client(&c, 0);
    for (round, racers) in outcomes.iter().enumerate() {
        let winners: Vec<usize> = racers.iter().flatten().copied().collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored: String = redis::cmd("GET")
            .arg(format!("race:nx:{round}"))
            .query(&mut check)
            .expect("GET");
        assert_eq!(stored, winners[0].to_string(), "round {round}");
    }
}

#[test]
fn watch_multi_exec_through_three_nodes_has_one_winner_per_round() {
    if common::is_real_redis() {
        return;
    }
    let c = Cluster::start(3);
    let n = rounds();
    let outcomes = race(&c, n, |con, _, _, barrier| {
        redis::cmd("WATCH")
            .arg("race:ctr")
            .exec(con)
            .expect("WATCH");
        let _: Option<i64> = redis::cmd("GET").arg("race:ctr").query(con).expect("GET");
        // Everyone has read the same version before anyone commits.
        barrier.wait();
        let ran: Option<(i64,)> = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg("race:ctr")
            .query(con)
            .expect("EXEC");
        ran.is_some()
    });
    for (round, racers) in outcomes.iter().enumerate() {
        let winners = racers.iter().filter(|won| **won).count();
        assert_eq!(winners, 1, "round {round}: {racers:?}");
    }
    for i in 0..3 {
        let total: i64 = redis::cmd("GET")
            .arg("race:ctr")
            .query(&mut client(&c, i))
            .expect("GET");
        assert_eq!(total, n as i64, "node {i}");
    }
}
