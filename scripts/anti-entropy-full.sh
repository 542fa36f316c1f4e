#!/usr/bin/env bash
# scripts/anti-entropy-full.sh — the full-size run of tests/anti_entropy.rs:
# 3 real dynkv processes (N=3, --read-repair off), AE_KEYS keys (default
# 200000), node 3's disk wiped and rebuilt by anti-entropy alone, then 1 % of
# the keys overwritten while node 3 is cut off and repaired after the heal.
# Prints the rebuild time and rate, and the anti-entropy bytes moved against
# the bytes that differ.
#
#   scripts/anti-entropy-full.sh            # 200k keys
#   AE_KEYS=1000000 scripts/anti-entropy-full.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export AE_KEYS="${AE_KEYS:-200000}"
exec cargo test --release --test anti_entropy -- --nocapture --test-threads=1
