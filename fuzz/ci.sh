#!/usr/bin/env bash
# fuzz/ci.sh — the CI smoke run of the fuzz targets: installs cargo-fuzz if
# missing, builds every target, runs each for $FUZZ_CI_SECONDS (default 15)
# seconds, two at a time, starting from the committed corpus (so every
# committed input, including past crashes, is replayed), and fails on any
# crash, hang (10 s) or leak (2 GiB). Stable toolchain only.
#
# Built with --dev (no optimisation, debug assertions on): a clean build
# takes half the time of the optimised one (measured 3m07s vs 6m05s on a
# 2-core machine), which matters more for a 15 s smoke run than speed.
# The long run (fuzz/long-run.sh) builds optimised; see README "Fuzzing".
set -euo pipefail
cd "$(dirname "$0")"
export FUZZ_NICE="${FUZZ_NICE:-0}"
export FUZZ_BUILD_FLAGS="${FUZZ_BUILD_FLAGS:---dev}"
exec ./long-run.sh "${FUZZ_CI_SECONDS:-15}"
