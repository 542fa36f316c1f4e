#!/usr/bin/env bash
# benches/compare.sh — single-node throughput/latency: dynkv vs redis-server.
#
# Starts, side by side on free loopback ports, each with a fresh temp dir:
#   redis-server --appendonly yes --appendfsync everysec --save ''
#   dynkv        --fsync everysec
# and runs against each (one at a time, so they don't compete for CPU):
#   redis-benchmark -t $TESTS -c $CLIENTS -n $N -d $DATA -P 1   (and -P 16) --csv
# Prints a markdown table (test, pipeline, ops/s of each, ratio dynkv/redis,
# p50 and p99 of each) and writes it to $OUT (default benches/results-single.md).
#
# Env:
#   N=1000000        requests per test (use e.g. N=20000 for a quick run)
#   CLIENTS=50       parallel connections (-c)
#   DATA=100         value size in bytes (-d)
#   PIPELINES="1 16" pipeline depths (-P) to run
#   TESTS=set,get    redis-benchmark tests (-t); every test it reports gets a row;
#                    TESTS=default runs redis-benchmark's default list (no -t)
#                    (benches/types.sh runs the data-type tests)
#   R=               if set, passed as -r R (random keys); default: one key per test,
#                    exactly like plain redis-benchmark
#   DYNKV_BIN=path   dynkv binary (default target/release/dynkv, built if missing).
#                    DYNKV_BIN= (set but empty) benchmarks a second redis-server in
#                    the dynkv column — only to validate this script.
#   OUT=path         where to write the markdown table
# Exits non-zero if a server fails to start/dies or a benchmark gives no result.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib.sh"
N="${N:-1000000}"
CLIENTS="${CLIENTS:-50}"
DATA="${DATA:-100}"
PIPELINES="${PIPELINES:-1 16}"
TESTS="${TESTS:-set,get}"
TEST_ARGS=(-t "$TESTS"); TEST_DESC="-t $TESTS"
[[ $TESTS == default ]] && { TEST_ARGS=(); TEST_DESC="(default test list)"; }
OUT="${OUT:-$ROOT/benches/results-single.md}"
HOST=127.0.0.1

for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (apt-get install redis-server redis-tools)"; exit 2; }
done

STANDIN=0
if [[ -v DYNKV_BIN && -z "$DYNKV_BIN" ]]; then
  STANDIN=1
  echo "NOTE: DYNKV_BIN is empty: the 'dynkv' column is a second redis-server (script validation only)"
else
  DYNKV_BIN="${DYNKV_BIN:-$ROOT/target/release/dynkv}"
  if [[ ! -x "$DYNKV_BIN" ]]; then
    echo "== building dynkv (cargo build --release)"
    (cd "$ROOT" && cargo build --release)
  fi
fi

read -r RPORT DPORT DCPORT DMPORT < <(free_ports 4)

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
WORK="$(mktemp -d -t dynkv-bench.XXXXXX)"
PIDS=()
cleanup() {
  local rc=$? p
  stop_pids "${PIDS[@]}"
  if [[ $rc -ne 0 ]]; then
    echo "== logs kept in $WORK"; tail -n 20 "$WORK"/*.log 2>/dev/null || true
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/redis" "$WORK/dynkv"
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
  --appendonly yes --appendfsync everysec >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
if [[ $STANDIN -eq 1 ]]; then
  redis-server --port "$DPORT" --bind 127.0.0.1 --dir "$WORK/dynkv" --save '' \
    --appendonly yes --appendfsync everysec >"$WORK/dynkv.log" 2>&1 &
  DYNKV_DESC="redis-server stand-in (DYNKV_BIN empty)"
else
  "$DYNKV_BIN" --port "$DPORT" --cluster-port "$DCPORT" --metrics-port "$DMPORT" \
    --data-dir "$WORK/dynkv" --fsync everysec --node-name bench1 >"$WORK/dynkv.log" 2>&1 &
  DYNKV_DESC="$DYNKV_BIN (repo HEAD $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
fi
DYNKV_PID=$!; PIDS+=("$DYNKV_PID")

wait_ping "$RPORT" "$REDIS_PID" redis-server
wait_ping "$DPORT" "$DYNKV_PID" dynkv
echo "== redis-server on :$RPORT, dynkv on :$DPORT ($DYNKV_DESC)"

declare -A RES   # RES[server,pipeline,test] = "rps avg min p50 p95 p99 max"
NAMES=()         # test names as redis-benchmark reports them, in order
run_bench() { # NAME PORT PIPELINE
  local name="$1" port="$2" pl="$3" out extra=()
  [[ -n "${R:-}" ]] && extra=(-r "$R")
  extra+=("${TEST_ARGS[@]}")
  echo "-- $name: redis-benchmark -c $CLIENTS -n $N -d $DATA -P $pl ${extra[*]}" >&2
  out="$(timeout 1800 redis-benchmark -h "$HOST" -p "$port" -c "$CLIENTS" -n "$N" \
          -d "$DATA" -P "$pl" "${extra[@]}" --csv 2>&1)" || { echo "FAIL: redis-benchmark against $name failed:"; echo "$out"; return 1; }
  echo "$out" >&2
  if grep -qiE '^(error|.*ERR )' <<<"$out"; then
    echo "FAIL: error lines from $name (P=$pl)"; return 1
  fi
  local t line
  # CSV lines: "TEST","rps","avg","min","p50","p95","p99","max"
  while IFS= read -r line; do
    t="$(cut -d'"' -f2 <<<"$line" | tr ' ' '_')"
    [[ "$t" == test ]] && continue
    [[ -v "RES[redis,$pl,$t]" || $name == redis ]] || { echo "FAIL: $name reported $t, redis did not"; return 1; }
    [[ $name == redis && $pl == "${PIPELINES%% *}" ]] && NAMES+=("$t")
    RES["$name,$pl,$t"]="$(cut -d'"' -f3- <<<"$line" | tr -d '"' | tr ',' ' ')"
  done < <(grep -E '^"' <<<"$out")
  for t in "${NAMES[@]}"; do
    [[ -v "RES[$name,$pl,$t]" ]] || { echo "FAIL: no $t result from $name (P=$pl)"; return 1; }
  done
  kill -0 "$([[ $name == redis ]] && echo "$REDIS_PID" || echo "$DYNKV_PID")" 2>/dev/null \
    || { echo "FAIL: $name died during the benchmark"; return 1; }
}

for pl in $PIPELINES; do
  run_bench redis "$RPORT" "$pl"
  run_bench dynkv "$DPORT" "$pl"
done

field() { awk -v i="$2" '{print $i}' <<<"${RES[$1]}"; } # KEY INDEX(1=rps 4=p50 6=p99)
{
  echo "# Single-node benchmark: dynkv vs redis-server"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), host: $(nproc) cores, $(uname -sr), load average before the run: $LOAD_BEFORE"
  echo "- client and servers share the same machine; servers are benchmarked one at a time"
  echo "- redis: $(redis-server --version | awk '{print $3}' | tr -d 'v='), appendonly yes, appendfsync everysec"
  echo "- dynkv: $DYNKV_DESC, --fsync everysec"
  echo "- command: \`redis-benchmark $TEST_DESC -c $CLIENTS -n $N -d $DATA -P <pipeline>${R:+ -r $R}\`"
  echo
  echo "| test | pipeline | redis ops/s | dynkv ops/s | dynkv/redis | redis p50 ms | dynkv p50 ms | redis p99 ms | dynkv p99 ms |"
  echo "|------|---------:|------------:|------------:|------------:|-------------:|-------------:|-------------:|-------------:|"
  for pl in $PIPELINES; do
    for t in "${NAMES[@]}"; do
      rr="$(field "redis,$pl,$t" 1)"; dr="$(field "dynkv,$pl,$t" 1)"
      ratio="$(awk -v a="$dr" -v b="$rr" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
      printf '| %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s |\n' "$t" "$pl" "$rr" "$dr" "$ratio" \
        "$(field "redis,$pl,$t" 4)" "$(field "dynkv,$pl,$t" 4)" \
        "$(field "redis,$pl,$t" 6)" "$(field "dynkv,$pl,$t" 6)"
    done
  done
} >"$WORK/table.md"

echo
cat "$WORK/table.md"
mkdir -p "$(dirname "$OUT")"
cp "$WORK/table.md" "$OUT"
echo
echo "PASS: benchmark complete, table written to $OUT"
