#!/usr/bin/env bash
# benches/join.sh — foreground latency while a node joins: p50/p99 of GET and
# SET on a 3-node cluster at rest, then while a 4th node joins and partitions
# stream to it, side by side with a redis-server at rest for reference.
#
#   KEYS=100000   keys loaded before the join (key:000000000000 .. as redis-benchmark names them)
#   N=200000      requests per measured run (-n), random keys over KEYS (-r)
#   CLIENTS=50    parallel connections (-c)
#   DYNKV_BIN     dynkv binary (default target/release/dynkv, built if missing)
#   OUT           markdown table (default benches/results-join.md)
# Goal: p99 during the join <= 2x p99 at rest. Exits non-zero if a server dies,
# a run gives no result, or a key read back after the join is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib.sh"
KEYS="${KEYS:-100000}"; N="${N:-200000}"; CLIENTS="${CLIENTS:-50}"
OUT="${OUT:-$ROOT/benches/results-join.md}"
HOST=127.0.0.1
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
DYNKV_BIN="${DYNKV_BIN:-$TARGET_DIR/release/dynkv}"
[[ -x "$DYNKV_BIN" ]] || (cd "$ROOT" && cargo build --release)

read -r -a P < <(free_ports 13)
RPORT=${P[0]}
CPORT=("${P[1]}" "${P[2]}" "${P[3]}" "${P[4]}")
CCPORT=("${P[5]}" "${P[6]}" "${P[7]}" "${P[8]}")
CMPORT=("${P[9]}" "${P[10]}" "${P[11]}" "${P[12]}")
WORK="$(mktemp -d -t dynkv-join-bench.XXXXXX)"
PIDS=()
cleanup() {
  local rc=$?
  stop_pids "${PIDS[@]}"
  if [[ $rc -ne 0 ]]; then echo "== logs kept in $WORK"; tail -n 20 "$WORK"/*.log 2>/dev/null || true; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/redis"
redis-server --port "$RPORT" --bind "$HOST" --dir "$WORK/redis" --save '' --appendonly yes \
  --appendfsync everysec >"$WORK/redis.log" 2>&1 &
PIDS+=($!); wait_ping "$RPORT" $! redis-server
SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
start_node() { # INDEX
  local i=$1 join=()
  [[ $i -gt 0 ]] && join=(--join "$HOST:${CCPORT[0]}")
  mkdir -p "$WORK/c$i"
  "$DYNKV_BIN" --bind "$HOST" --port "${CPORT[$i]}" --cluster-port "${CCPORT[$i]}" --metrics-port "${CMPORT[$i]}" \
    --data-dir "$WORK/c$i" --node-name "c$((i + 1))" --fsync everysec --cluster-secret "$SECRET" "${join[@]}" \
    >"$WORK/c$i.log" 2>&1 &
  PIDS+=($!); wait_ping "${CPORT[$i]}" $! "dynkv node $((i + 1))"
}
for i in 0 1 2; do start_node "$i"; done
for _ in $(seq 300); do
  [[ "$(redis-cli -h "$HOST" -p "${CPORT[0]}" DYN.MEMBERS | grep -cx up || true)" == 3 ]] && break; sleep 0.2
done

echo "== loading $KEYS keys (redis-cli --pipe)"
awk -v n="$KEYS" 'BEGIN{for (k = 0; k < n; k++) printf "SET key:%012d v%d\r\n", k, k}' \
  | redis-cli -h "$HOST" -p "${CPORT[0]}" --pipe | tail -n1

declare -A RPS P50 P99
bench() { # NAME PORT
  local out t line
  out="$(redis-benchmark -h "$HOST" -p "$2" -t set,get -r "$KEYS" -n "$N" -c "$CLIENTS" --csv 2>/dev/null)"
  for t in SET GET; do
    line="$(grep "^\"$t\"" <<<"$out" | tail -n1 | tr -d '"')"
    [[ -n "$line" ]] || { echo "FAIL: no $t result for $1"; echo "$out"; return 1; }
    IFS=, read -r _ RPS["$1,$t"] _ _ P50["$1,$t"] _ P99["$1,$t"] _ <<<"$line"
    echo "$1 $t: ${RPS[$1,$t]} ops/s p50 ${P50[$1,$t]} ms p99 ${P99[$1,$t]} ms"
  done
}
bench redis "$RPORT"
bench rest "${CPORT[0]}"

echo "== node 4 joins; measuring while its partitions stream in"
JOIN_START=$SECONDS
start_node 3
bench joining "${CPORT[0]}"
MOVING_AFTER="$(info_field "${CPORT[0]}" partitions_moving)"
for _ in $(seq 1200); do
  [[ "$(info_field "${CPORT[0]}" partitions_moving)" == 0 ]] && break; sleep 0.5
done
JOIN_SECS=$((SECONDS - JOIN_START))
echo "== join finished after ${JOIN_SECS}s (partitions_moving right after the measured run: ${MOVING_AFTER:-?})"

# Every loaded key still reads back through the new node.
MISSING="$(for k in $(seq 0 997 $((KEYS - 1))); do printf 'GET key:%012d\n' "$k"; done \
  | redis-cli -h "$HOST" -p "${CPORT[3]}" | grep -c '^$' || true)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
  echo "# Foreground latency during a join (dynkv 3 nodes + 1 joining)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores; all processes share them"
  echo "- $KEYS keys loaded; \`redis-benchmark -t set,get -r $KEYS -n $N -c $CLIENTS\` against node 1"
  echo "- join took ${JOIN_SECS}s; partitions still moving when the measured run ended: ${MOVING_AFTER:-?}; sampled keys missing through the new node: $MISSING"
  echo
  echo "| test | redis p50/p99 ms | at rest ops/s | at rest p50/p99 ms | during join ops/s | during join p50/p99 ms | p99 join/rest |"
  echo "|---|---|---:|---|---:|---|---:|"
  for t in SET GET; do
    echo "| $t | ${P50[redis,$t]} / ${P99[redis,$t]} | ${RPS[rest,$t]} | ${P50[rest,$t]} / ${P99[rest,$t]} | ${RPS[joining,$t]} | ${P50[joining,$t]} / ${P99[joining,$t]} | $(ratio "${P99[joining,$t]}" "${P99[rest,$t]}") |"
  done
} >"$WORK/table.md"
cat "$WORK/table.md"; cp "$WORK/table.md" "$OUT"
[[ "$MISSING" == 0 ]] || { echo "FAIL: $MISSING sampled keys missing after the join"; exit 1; }
echo "PASS: table written to $OUT"
