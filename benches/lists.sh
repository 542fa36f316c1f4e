#!/usr/bin/env bash
# benches/lists.sh — redis-benchmark's default test list (no -t: PING, SET,
# GET, INCR, LPUSH, RPUSH, LPOP, RPOP, SADD, HSET, SPOP, ZADD, ZPOPMIN,
# LRANGE_100..600, MSET), dynkv next to redis-server in the same run: the
# single-node comparison (benches/compare.sh, -P 1) and the 3-node cluster
# (benches/cluster.sh). Tables go to benches/results-lists-single.md and
# benches/results-lists-cluster.md.
#
# N is smaller than the other benches' because every list test works on one
# key ("mylist"), which grows to N elements, and a list is stored as one
# record today: a push or pop costs time in proportion to the list's length
# (see the README's "Lists, queues and blocking pops").
#
# The cluster replicates the whole list on every write, so its run is
# smaller again (CLUSTER_N).
#
#   benches/lists.sh                        # N=10000, CLUSTER_N=2000
#   N=2000 CLUSTER_N=500 benches/lists.sh   # a quick run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TESTS=default
export N="${N:-10000}"
PIPELINES=1 OUT="${OUT_SINGLE:-$ROOT/benches/results-lists-single.md}" "$ROOT/benches/compare.sh"
N="${CLUSTER_N:-2000}" OUT="${OUT_CLUSTER:-$ROOT/benches/results-lists-cluster.md}" "$ROOT/benches/cluster.sh"
