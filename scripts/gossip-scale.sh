#!/usr/bin/env bash
# scripts/gossip-scale.sh — the full-size gossip and ring scale test
# (docs/gossip-scale.md): 1,000 simulated nodes run the node's own gossip
# round until a join has reached all of them, and the 1,001st node joins a
# Q = 16384 ring. Prints the report (rounds, bytes per node per round,
# partitions and replicas moved, balance) and fails if a bound is missed.
#
#   scripts/gossip-scale.sh              # 1,000 nodes, debug profile
#   GOSSIP_NODES=2000 scripts/gossip-scale.sh
#   PROFILE=release scripts/gossip-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
nodes="${GOSSIP_NODES:-1000}"
profile=()
if [ "${PROFILE:-debug}" = release ]; then profile=(--release); fi
GOSSIP_NODES="$nodes" cargo test "${profile[@]}" --test gossip_scale -- --nocapture --test-threads=1
