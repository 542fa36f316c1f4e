#!/usr/bin/env bash
# benches/cluster.sh — throughput of a 3-node dynkv cluster vs one dynkv node
# vs redis-server, all on this machine.
#
# Starts, on free loopback ports, each with a fresh temp dir:
#   redis-server --appendonly yes --appendfsync everysec --save ''
#   dynkv (single node)         --fsync everysec
#   dynkv x3 (cluster, N=3 R=2 W=2, --fsync everysec; nodes 2 and 3 --join node 1)
# waits until every cluster node lists 3 members "up", then runs, one
# system at a time (so they don't compete for CPU):
#   redis-benchmark -t $TESTS -c $CLIENTS -n $N -q
# against redis, the single node, and node 1 of the cluster. Afterwards it
# checks that the benchmark key reached all 3 replicas (DYN.DEBUG LOCAL).
# Prints a markdown table (ops/s per system, p50, ratios cluster/redis and
# single/redis) and writes it to $OUT (default benches/results-cluster.md).
#
# Env:
#   N=300000         requests per test
#   CLIENTS=50       parallel connections (-c)
#   TESTS=set,get    redis-benchmark tests (-t); every test it reports gets a row;
#                    TESTS=default runs redis-benchmark's default list (no -t)
#                    (benches/types.sh runs the data-type tests)
#   DYNKV_BIN=path   dynkv binary (default ${CARGO_TARGET_DIR:-target}/release/dynkv,
#                    built with cargo build --release if missing)
#   OUT=path         where to write the markdown table
# Exits non-zero if a server fails to start or dies, the cluster does not
# form, or a benchmark gives no result.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib.sh"
N="${N:-300000}"
CLIENTS="${CLIENTS:-50}"
TESTS="${TESTS:-set,get}"
TEST_ARGS=(-t "$TESTS"); TEST_DESC="-t $TESTS"
[[ $TESTS == default ]] && { TEST_ARGS=(); TEST_DESC="(default test list)"; }
OUT="${OUT:-$ROOT/benches/results-cluster.md}"
HOST=127.0.0.1

for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (apt-get install redis-server redis-tools)"; exit 2; }
done

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DYNKV_BIN="${DYNKV_BIN:-$TARGET_DIR/release/dynkv}"
if [[ ! -x "$DYNKV_BIN" ]]; then
  echo "== building dynkv (cargo build --release)"
  (cd "$ROOT" && cargo build --release)
fi

# 1 redis + 3 single (client, cluster, metrics) + 3x3 cluster = 13 ports.
read -r -a P < <(free_ports 13)
RPORT=${P[0]}
SPORT=${P[1]} SCPORT=${P[2]} SMPORT=${P[3]}
CPORT=("${P[4]}" "${P[5]}" "${P[6]}")     # client ports of cluster nodes 1..3
CCPORT=("${P[7]}" "${P[8]}" "${P[9]}")    # cluster ports
CMPORT=("${P[10]}" "${P[11]}" "${P[12]}") # metrics ports

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
WORK="$(mktemp -d -t dynkv-cluster-bench.XXXXXX)"
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

mkdir -p "$WORK/redis" "$WORK/single" "$WORK/c1" "$WORK/c2" "$WORK/c3"
redis-server --port "$RPORT" --bind "$HOST" --dir "$WORK/redis" --save '' \
  --appendonly yes --appendfsync everysec >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
"$DYNKV_BIN" --bind "$HOST" --port "$SPORT" --cluster-port "$SCPORT" --metrics-port "$SMPORT" \
  --data-dir "$WORK/single" --fsync everysec --node-name single >"$WORK/single.log" 2>&1 &
SINGLE_PID=$!; PIDS+=("$SINGLE_PID")
wait_ping "$RPORT" "$REDIS_PID" redis-server
wait_ping "$SPORT" "$SINGLE_PID" "dynkv single"

CPID=()
# Every member shares one cluster secret (cluster-port authentication).
CLUSTER_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
for i in 0 1 2; do
  join=()
  [[ $i -gt 0 ]] && join=(--join "$HOST:${CCPORT[0]}")
  "$DYNKV_BIN" --bind "$HOST" --port "${CPORT[$i]}" --cluster-port "${CCPORT[$i]}" \
    --metrics-port "${CMPORT[$i]}" --data-dir "$WORK/c$((i + 1))" --node-name "c$((i + 1))" \
    --n 3 --r 2 --w 2 --fsync everysec --cluster-secret "$CLUSTER_SECRET" "${join[@]}" >"$WORK/c$((i + 1)).log" 2>&1 &
  CPID+=($!); PIDS+=($!)
  wait_ping "${CPORT[$i]}" "${CPID[$i]}" "dynkv cluster node $((i + 1))"
done

echo "== waiting for the 3-node cluster to form"
formed=0
for _ in $(seq 300); do
  ok=1
  for i in 0 1 2; do
    ups="$(redis-cli -h "$HOST" -p "${CPORT[$i]}" DYN.MEMBERS 2>/dev/null | grep -cx up || true)"
    [[ "$ups" == 3 ]] || { ok=0; break; }
  done
  [[ $ok -eq 1 ]] && { formed=1; break; }
  sleep 0.2
done
if [[ $formed -ne 1 ]]; then
  echo "FAIL: the cluster did not form within 60 s; DYN.MEMBERS on node 1:"
  redis-cli -h "$HOST" -p "${CPORT[0]}" DYN.MEMBERS || true
  exit 1
fi
echo "== redis :$RPORT, dynkv single :$SPORT, dynkv cluster :${CPORT[*]}"

declare -A RPS P50
NAMES=()   # test names as redis-benchmark reports them (from the redis run)
run_bench() { # NAME PORT PID...
  local name="$1" port="$2" out t line p
  shift 2
  echo "-- $name: redis-benchmark $TEST_DESC -c $CLIENTS -n $N -q" >&2
  out="$(timeout 1800 redis-benchmark -h "$HOST" -p "$port" "${TEST_ARGS[@]}" -c "$CLIENTS" -n "$N" -q 2>&1 \
          | tr '\r' '\n')" || { echo "FAIL: redis-benchmark against $name failed:"; echo "$out"; return 1; }
  if grep -qE '(^|[^A-Z])ERR ' <<<"$out"; then
    echo "FAIL: error lines from $name:"; grep -E '(^|[^A-Z])ERR ' <<<"$out" | head -n 5; return 1
  fi
  if [[ $name == redis ]]; then
    mapfile -t NAMES < <(grep -E '^[A-Z_0-9]+( \([^)]*\))?: [0-9.]+ requests per second' <<<"$out" \
      | sed -E 's/: [0-9.]+ requests per second.*//' | awk '!seen[$0]++')
  fi
  for t in "${NAMES[@]}"; do
    # Anchored: "SET: " must not match the HSET or MSET lines.
    line="$(awk -v t="$t: " 'index($0, t) == 1 && /requests per second/' <<<"$out" | tail -n1)"
    [[ -n "$line" ]] || { echo "FAIL: no $t result from $name:"; echo "$out"; return 1; }
    echo "$line" >&2
    RPS["$name,$t"]="$(sed -E 's/.*: ([0-9.]+) requests per second.*/\1/' <<<"$line")"
    P50["$name,$t"]="$(grep -oE 'p50=[0-9.]+' <<<"$line" | cut -d= -f2 || true)"
    [[ -n "${P50["$name,$t"]}" ]] || P50["$name,$t"]="?"
  done
  for p in "$@"; do
    kill -0 "$p" 2>/dev/null || { echo "FAIL: $name died during the benchmark"; return 1; }
  done
}

run_bench redis "$RPORT" "$REDIS_PID"
run_bench single "$SPORT" "$SINGLE_PID"
run_bench cluster "${CPORT[0]}" "${CPID[@]}"

# The benchmark's key must have reached every replica (N=3 on 3 nodes) with
# the value GET returns through node 1.
if [[ ",$TESTS," == *,set,* || $TESTS == default ]]; then
  BKEY='key:__rand_int__'
  BVAL="$(redis-cli -h "$HOST" -p "${CPORT[0]}" GET "$BKEY")"
  [[ -n "$BVAL" ]] || { echo "FAIL: GET $BKEY through cluster node 1 is empty after the benchmark"; exit 1; }
  for _ in $(seq 100); do
    have=0
    for i in 0 1 2; do
      [[ "$(redis-cli -h "$HOST" -p "${CPORT[$i]}" DYN.DEBUG LOCAL "$BKEY" 2>/dev/null | tail -n1)" == "$BVAL" ]] \
        && have=$((have + 1))
    done
    [[ $have -eq 3 ]] && break
    sleep 0.2
  done
  [[ $have -eq 3 ]] || { echo "FAIL: the benchmark key is on $have of 3 cluster nodes"; exit 1; }
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
  echo "# Cluster benchmark: dynkv 3-node cluster vs single node vs redis-server"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), host: $(nproc) cores, $(uname -sr), load average before the run: $LOAD_BEFORE"
  echo "- client and all servers share the same machine (the 3 cluster nodes share its cores); systems are benchmarked one at a time"
  echo "- redis: $(redis-server --version | awk '{print $3}' | tr -d 'v='), appendonly yes, appendfsync everysec"
  echo "- dynkv: $DYNKV_BIN (built $(date -u -r "$DYNKV_BIN" '+%Y-%m-%d %H:%M UTC'); repo HEAD $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')), --fsync everysec"
  echo "- cluster: 3 nodes, N=3 R=2 W=2, benchmark against node 1 (the benchmark key was checked on all 3 replicas afterwards)"
  echo "- command: \`redis-benchmark $TEST_DESC -c $CLIENTS -n $N -q\`"
  echo
  echo "| test | redis ops/s | single ops/s | cluster ops/s | single/redis | cluster/redis | redis p50 ms | single p50 ms | cluster p50 ms |"
  echo "|------|------------:|-------------:|--------------:|-------------:|--------------:|-------------:|--------------:|---------------:|"
  for t in "${NAMES[@]}"; do
    rr="${RPS[redis,$t]}"; sr="${RPS[single,$t]}"; cr="${RPS[cluster,$t]}"
    printf '| %s | %.0f | %.0f | %.0f | %s | %s | %s | %s | %s |\n' "$t" "$rr" "$sr" "$cr" \
      "$(ratio "$sr" "$rr")" "$(ratio "$cr" "$rr")" \
      "${P50[redis,$t]}" "${P50[single,$t]}" "${P50[cluster,$t]}"
  done
} >"$WORK/table.md"

echo
cat "$WORK/table.md"
mkdir -p "$(dirname "$OUT")"
cp "$WORK/table.md" "$OUT"
echo
echo "PASS: benchmark complete, table written to $OUT"
