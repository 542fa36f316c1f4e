#!/usr/bin/env bash
# scripts/datatypes-full.sh — the full-size runs of the data-type and
# conditional-write tests (CI runs them at reduced sizes):
#   tests/datatype_convergence.rs  3 clients x 1,000 INCRBY through three
#                                  partitioned nodes (CI: 200), then the heal
#   tests/conditional_race.rs      1,000 rounds of SET NX and of
#                                  WATCH/MULTI/EXEC racing through three
#                                  nodes, one winner each (CI: 200)
#
#   scripts/datatypes-full.sh
#   DYNKV_RACE_ROUNDS=5000 scripts/datatypes-full.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export DYNKV_CONVERGE_OPS="${DYNKV_CONVERGE_OPS:-1000}"
export DYNKV_RACE_ROUNDS="${DYNKV_RACE_ROUNDS:-1000}"
cargo test --release --test datatype_convergence --test conditional_race -- --nocapture --test-threads=1
