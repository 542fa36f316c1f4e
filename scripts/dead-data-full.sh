#!/usr/bin/env bash
# scripts/dead-data-full.sh — the full-size run of tests/dead_data.rs:
# 20,000 deleted and 20,000 expiring keys (instead of 1,000 each) missed by a
# replica that is down (kill -9) for three grace periods, then repaired and
# purged from every replica. Release build; prints the measured figures.
#
#   scripts/dead-data-full.sh            # DEAD_DATA_KEYS=20000
#   DEAD_DATA_KEYS=50000 scripts/dead-data-full.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export DEAD_DATA_KEYS="${DEAD_DATA_KEYS:-20000}"
exec cargo test --release --test dead_data -- --nocapture --test-threads=1
