#!/usr/bin/env bash
# scripts/lists-full.sh — the full-size runs of the list, queue and Pub/Sub
# tests (CI runs them at reduced sizes):
#   tests/list_cluster.rs   4 consumers popping through 3 nodes over 10,000
#                           pushed elements, each popped exactly once (CI: 1,000);
#                           BLPOP on node 3 woken by RPUSH through node 1;
#                           RPUSH through both sides of a partition, healed
#   tests/pubsub.rs         10,000 messages published through nodes 1 and 2
#                           reaching a subscriber on node 3 in order (CI: 2,000)
# The job-queue run (RQ, 1,000 jobs and a worker) is part of compat-tests/run.sh.
#
#   scripts/lists-full.sh
#   DYNKV_LIST_ELEMENTS=50000 scripts/lists-full.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export DYNKV_LIST_ELEMENTS="${DYNKV_LIST_ELEMENTS:-10000}"
export DYNKV_PUBSUB_MESSAGES="${DYNKV_PUBSUB_MESSAGES:-5000}"
cargo test --release --test list_cluster --test pubsub -- --nocapture --test-threads=1
