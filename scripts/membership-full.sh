#!/usr/bin/env bash
# scripts/membership-full.sh — the full-size membership-change tests:
# tests/membership_change.rs with 100,000 keys preloaded (instead of the CI
# size of 4,000), a writer running throughout, two joins, a DYN.LEAVE and
# the removal of a kill -9'd node. Prints the figures (partition replicas
# and bytes moved against the ideal N·Q/(S+1), reads, time to N copies).
#
#   scripts/membership-full.sh            # release build, both tests
#   scripts/membership-full.sh joins      # only the tests matching "joins"
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export DYNKV_MEMBERSHIP_FULL=1
cargo build --release
cargo test --release --test membership_change "${1:-}" -- --nocapture --test-threads=1
