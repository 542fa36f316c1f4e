#!/usr/bin/env bash
# benches/cluster_routing.sh — client-driven coordination: what the Redis Cluster
# protocol saves, and what durability costs.
#
# Starts on free loopback ports, one system at a time (they share this machine's
# cores), each with fresh temp dirs:
#   - dynkv single node --fsync everysec
#   - a 3-node and a 5-node dynkv cluster (N=3 R=2 W=2, --fsync everysec, each node with a
#     --cluster-client-port), waiting until the ring is committed
#   - dynkv single node with --fsync always, then with --fsync no
# and runs `redis-benchmark -t set,get -n $N -c $CLIENTS -r $KEYS`:
#   - against the single node;
#   - against each cluster twice: `--cluster` (routes every key by the slot map) and plain
#     against node 1 (the other nodes coordinate most of its keys), with the sum of INFO
#     dynamo `forwarded_requests` over the nodes before and after each run;
#   - SET only against the two fsync policies.
# Reports ops/s, p50, p99 and p99.9 (from redis-benchmark's percentile distribution: the
# first reported percentile at or above 99.9 %), forwarded requests per request, the CPU
# time all dynkv processes of the system spent per request (user + system, from /proc:
# where a cluster's throughput goes on a machine whose cores every node shares), the ratio
# cluster/single and always/no, as a markdown table written to $OUT.
#
# Env:
#   N=200000        requests per test
#   CLIENTS=50      connections (-c)
#   KEYS=100000     random key space (-r)
#   DYNKV_BIN=path  dynkv binary (default ${CARGO_TARGET_DIR:-target}/release/dynkv, built if missing)
#   OUT=path        default benches/results-cluster-routing.md
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib.sh"
N="${N:-200000}"
CLIENTS="${CLIENTS:-50}"
KEYS="${KEYS:-100000}"
OUT="${OUT:-$ROOT/benches/results-cluster-routing.md}"
HOST=127.0.0.1
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DYNKV_BIN="${DYNKV_BIN:-$TARGET_DIR/release/dynkv}"
for tool in redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (apt-get install redis-tools)"; exit 2; }
done
[[ -x "$DYNKV_BIN" ]] || (cd "$ROOT" && cargo build --release)

WORK="$(mktemp -d -t dynkv-routing-bench.XXXXXX)"
PIDS=()
cleanup() {
  local rc=$?
  stop_pids "${PIDS[@]}"
  if [[ $rc -ne 0 ]]; then echo "== logs kept in $WORK"; tail -n 20 "$WORK"/*.log 2>/dev/null || true
  else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"

NODE_PORTS=()   # client ports of the running system
start_system() { # NAME SIZE [dynkv flags...]: starts SIZE nodes, node 1 seeding the others
  local name="$1" size="$2" i p join
  shift 2
  stop_pids "${PIDS[@]}"; PIDS=(); NODE_PORTS=()
  read -r -a p < <(free_ports $((size * 3)))
  for ((i = 0; i < size; i++)); do
    join=()
    [[ $i -gt 0 ]] && join=(--join "$HOST:${p[$size]}")
    "$DYNKV_BIN" --bind "$HOST" --port "${p[$i]}" --cluster-port "${p[$((size + i))]}" \
      --cluster-client-port "${p[$((2 * size + i))]}" --metrics-port 0 --memcache-port 0 \
      --data-dir "$WORK/$name-$i" --node-name "$name-$i" --cluster-secret "$SECRET" \
      "$@" "${join[@]}" >"$WORK/$name-$i.log" 2>&1 &
    PIDS+=($!); NODE_PORTS+=("${p[$i]}")
    wait_ping "${p[$i]}" "$!" "dynkv $name node $((i + 1))"
  done
  for _ in $(seq 600); do
    local ok=1 port
    for port in "${NODE_PORTS[@]}"; do
      redis-cli -h "$HOST" -p "$port" CLUSTER INFO | tr -d '\r' | grep -qx "cluster_size:$size" || ok=0
      [[ "$(info_field "$port" partitions_moving)" == 0 ]] || ok=0
    done
    [[ $ok -eq 1 ]] && return 0
    sleep 0.2
  done
  echo "FAIL: $name did not settle into a $size-node ring"; return 1
}
forwarded() { info_sum forwarded_requests "${NODE_PORTS[@]}"; }

# cpu_ticks: user + system clock ticks of every running dynkv process of the system.
cpu_ticks() {
  local pid sum=0
  for pid in "${PIDS[@]}"; do
    [[ -r /proc/$pid/stat ]] || continue
    sum=$((sum + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")))
  done
  echo "$sum"
}
TICK_HZ="$(getconf CLK_TCK)"

declare -A RPS P50 P99 P999 FWD CPU
ROWS=()
bench() { # ROW TESTS [redis-benchmark flags...]: one run, parsed per test
  local row="$1" tests="$2" out t section before after
  shift 2
  before="$(forwarded)"
  local ticks
  ticks="$(cpu_ticks)"
  out="$(redis-benchmark -h "$HOST" -p "${NODE_PORTS[0]}" -t "$tests" -n "$N" -c "$CLIENTS" -r "$KEYS" "$@" 2>&1 \
    | tr '\r' '\n')" || { echo "FAIL: redis-benchmark ($row)"; echo "$out" | tail; return 1; }
  after="$(forwarded)"
  CPU["$row"]="$(awk -v t=$(( $(cpu_ticks) - ticks )) -v hz="$TICK_HZ" -v n="$N" -v k="${tests//[^,]/}" \
    'BEGIN{ printf "%.1f", t / hz * 1e6 / (n * (length(k) + 1)) }')"
  if grep -qE '(^|[^A-Z])ERR |MOVED' <<<"$out"; then echo "FAIL: error lines ($row)"; grep -E 'ERR |MOVED' <<<"$out" | head -n 3; return 1; fi
  for t in ${tests//,/ }; do
    t="${t^^}"
    # The section of one test: from its "====== SET ======" header to the next header.
    section="$(awk -v h="====== $t ======" 'index($0, "======") == 1 {on = ($0 == h)} on' <<<"$out")"
    [[ -n "$section" ]] || { echo "FAIL: no $t section ($row)"; echo "$out" | tail -n 20; return 1; }
    RPS["$row,$t"]="$(grep -oE 'throughput summary: [0-9.]+' <<<"$section" | grep -oE '[0-9.]+$')"
    P50["$row,$t"]="$(pct 50 <<<"$section")"
    P99["$row,$t"]="$(pct 99 <<<"$section")"
    P999["$row,$t"]="$(pct 99.9 <<<"$section")"
    echo "$row $t: ${RPS[$row,$t]} ops/s, p50 ${P50[$row,$t]} p99 ${P99[$row,$t]} p99.9 ${P999[$row,$t]} ms" >&2
  done
  FWD["$row"]="$(awk -v f=$((after - before)) -v n="$N" -v k="${tests//[^,]/}" \
    'BEGIN{ printf "%.2f", f / (n * (length(k) + 1)) }')"
  ROWS+=("$row")
}
# pct P: latency (ms) of the first reported percentile >= P in a test's section.
pct() { awk -v p="$1" '/% <= / {gsub("%", "", $1); if ($1 + 0 >= p + 0) {print $3; exit}}'; }

start_system single 1 --fsync everysec
bench single set,get
start_system three 3 --n 3 --r 2 --w 2 --fsync everysec
bench "3 nodes, --cluster" set,get --cluster
bench "3 nodes, plain" set,get
start_system five 5 --n 3 --r 2 --w 2 --fsync everysec
bench "5 nodes, --cluster" set,get --cluster
bench "5 nodes, plain" set,get
start_system always 1 --fsync always
bench "fsync always" set
start_system nosync 1 --fsync no
bench "fsync no" set

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
  echo "# Client-driven coordination (dynkv, Redis Cluster protocol)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores shared by every node and the client"
  echo "- \`redis-benchmark -t set,get -n $N -c $CLIENTS -r $KEYS\` against node 1; clusters N=3 R=2 W=2, --fsync everysec"
  echo "- forwarded/request: sum of INFO dynamo forwarded_requests over the nodes during the run, per request
- dynkv CPU µs/request: user + system time of all the system's dynkv processes during the run (SET and GET together), per request"
  echo
  echo "| system | test | ops/s | vs single | p50 ms | p99 ms | p99.9 ms | forwarded/request | dynkv CPU µs/request |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for row in "${ROWS[@]}"; do
    for t in SET GET; do
      [[ -n "${RPS[$row,$t]:-}" ]] || continue
      echo "| $row | $t | ${RPS[$row,$t]} | $(ratio "${RPS[$row,$t]}" "${RPS[single,$t]:-0}") | ${P50[$row,$t]} | ${P99[$row,$t]} | ${P999[$row,$t]} | ${FWD[$row]} | ${CPU[$row]} |"
    done
  done
  echo
  echo "SET with --fsync always / --fsync no: $(ratio "${RPS[fsync always,SET]}" "${RPS[fsync no,SET]}")"
} >"$WORK/table.md"
cat "$WORK/table.md"; cp "$WORK/table.md" "$OUT"
echo "PASS: table written to $OUT"
