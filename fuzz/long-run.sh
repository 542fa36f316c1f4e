#!/usr/bin/env bash
# fuzz/long-run.sh [SECONDS] — runs every fuzz target for SECONDS (default
# 900) each, at most $FUZZ_JOBS (default 2) at once, at `nice -n $FUZZ_NICE`
# (default 19, so builds and tests on the same machine come first).
#
# Works on the stable toolchain: cargo-fuzz with `-s none` (no sanitizer)
# passes no nightly-only flags. Installs cargo-fuzz if it is missing.
#
# Each target fuzzes a scratch corpus ($FUZZ_WORK/<target>, default
# fuzz/work/) seeded from the committed fuzz/corpus/<target>, which it only
# reads. A crash leaves its input in fuzz/artifacts/<target>/ and makes the
# script exit non-zero. At the end it prints, per target, executions and
# libFuzzer's final coverage (cov = edges, ft = features) and crashes.
#
# To keep new interesting inputs, merge only those adding coverage into the
# committed corpus (see README "Fuzzing"; keep it under 1 MB):
#   cargo fuzz run -s none <target> fuzz/corpus/<target> fuzz/work/<target> -- -merge=1
#
# Environment: FUZZ_JOBS, FUZZ_NICE, FUZZ_WORK, FUZZ_TARGETS (space-separated
# subset), FUZZ_BUILD_FLAGS (extra `cargo fuzz build/run` flags, e.g. --dev),
# CARGO_TARGET_DIR (default fuzz/target).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
SECONDS_PER_TARGET="${1:-900}"
JOBS="${FUZZ_JOBS:-2}"
NICE="${FUZZ_NICE:-19}"
WORK="${FUZZ_WORK:-$ROOT/fuzz/work}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/fuzz/target}"
TARGETS="${FUZZ_TARGETS:-resp_request rpc_frame store_codec context_token memcache_request}"
read -r -a BUILD_FLAGS <<<"${FUZZ_BUILD_FLAGS:-}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  nice -n "$NICE" cargo install cargo-fuzz --locked
fi
command -v c++ >/dev/null || { echo "FAIL: libFuzzer needs a C++ compiler (g++)"; exit 1; }

echo "building fuzz targets (target dir $TARGET_DIR)"
nice -n "$NICE" cargo fuzz build -s none "${BUILD_FLAGS[@]}" --target-dir "$TARGET_DIR"

run_one() {
  local t="$1" log="$WORK/$1.log"
  mkdir -p "$WORK/$t" "$ROOT/fuzz/artifacts/$t"
  # -timeout: an input taking 10 s is a hang; -rss_limit_mb: 2 GiB is a leak.
  if nice -n "$NICE" cargo fuzz run -s none "${BUILD_FLAGS[@]}" --target-dir "$TARGET_DIR" "$t" \
      "$WORK/$t" "$ROOT/fuzz/corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    echo "ok    $t"
  else
    echo "CRASH $t (log $log; input in fuzz/artifacts/$t/)"
    return 1
  fi
}

mkdir -p "$WORK"
touch "$WORK/.start"
FAILED=()
set -- $TARGETS
while [[ $# -gt 0 ]]; do
  pids=() names=()
  for _ in $(seq 1 "$JOBS"); do
    [[ $# -gt 0 ]] || break
    run_one "$1" & pids+=($!); names+=("$1"); shift
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || FAILED+=("${names[$i]}")
  done
done

echo
printf '%-14s %14s %8s %8s %8s %s\n' target executions cov ft corpus crashes
for t in $TARGETS; do
  log="$WORK/$t.log"
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*$' || true)
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*$' || true)
  corp=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' <<<"$last" | cut -d' ' -f2 || true)
  crashes=$(find "$ROOT/fuzz/artifacts/$t" -type f -newer "$WORK/.start" 2>/dev/null | wc -l)
  printf '%-14s %14s %8s %8s %8s %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes"
done

if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "FAIL: fuzz targets crashed: ${FAILED[*]}"
  exit 1
fi
