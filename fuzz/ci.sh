#!/usr/bin/env bash
# fuzz/ci.sh — the CI smoke run of the fuzz targets: installs cargo-fuzz if
# missing, builds every target, runs each for $FUZZ_CI_SECONDS (default 20)
# seconds, two at a time, starting from the committed corpus, and fails on
# any crash, hang (10 s) or leak (2 GiB). Stable toolchain only.
# The long run is fuzz/long-run.sh; see README "Fuzzing".
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_NICE="${FUZZ_NICE:-0}" exec ./long-run.sh "${FUZZ_CI_SECONDS:-20}"
