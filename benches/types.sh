#!/usr/bin/env bash
# benches/types.sh — every redis-benchmark test the data types cover, dynkv
# next to redis-server in the same run: the single-node comparison
# (benches/compare.sh) and the 3-node cluster (benches/cluster.sh) with
#   TESTS=ping,set,get,incr,sadd,hset,spop,zadd,zpopmin,mset
# Tables go to benches/results-types-single.md and results-types-cluster.md.
#
#   benches/types.sh              # N=100000
#   N=20000 benches/types.sh      # a quick run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TESTS="${TESTS:-ping,set,get,incr,sadd,hset,spop,zadd,zpopmin,mset}"
export N="${N:-100000}"
PIPELINES=1 OUT="$ROOT/benches/results-types-single.md" "$ROOT/benches/compare.sh"
OUT="$ROOT/benches/results-types-cluster.md" "$ROOT/benches/cluster.sh"
