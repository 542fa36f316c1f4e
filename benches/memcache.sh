#!/usr/bin/env bash
# benches/memcache.sh — memcached-protocol throughput: dynkv vs memcached.
#
# Starts, side by side on free loopback ports:
#   memcached -t 4 -m 1024 (-B ascii)
#   dynkv --fsync everysec, one node, on its --memcache-port
#   a 3-node dynkv cluster (N=3 R=2 W=2), the load spread over its three nodes
# and runs against each, one at a time, libmemcached's memaslap (Debian ships it
# as memcaslap) with $CLIENTS connections on $THREADS threads for $SECS seconds:
#   set   — 100% set, 100-byte values, 64-byte keys
#   mixed — 90% get / 10% set
# Prints a markdown table (ops/s of each, dynkv/memcached ratios) and writes it
# to $OUT (default benches/results-memcache.md).
#
# Env: SECS=10, CLIENTS=50, THREADS=2, DATA=100, DYNKV_BIN, OUT,
#      CLUSTER=1 (0 skips the 3-node cluster column)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib.sh"
SECS="${SECS:-10}"
CLIENTS="${CLIENTS:-50}"
THREADS="${THREADS:-2}"
DATA="${DATA:-100}"
CLUSTER="${CLUSTER:-1}"
OUT="${OUT:-$ROOT/benches/results-memcache.md}"
HOST=127.0.0.1
for tool in memcached memcaslap redis-cli; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (apt-get install memcached libmemcached-tools redis-tools)"; exit 2; }
done
DYNKV_BIN="${DYNKV_BIN:-$ROOT/target/release/dynkv}"
[[ -x "$DYNKV_BIN" ]] || (cd "$ROOT" && cargo build --release)

read -r MPORT D1 D1C D1M D1MC P1 P1C P2 P2C P3 P3C Q1 Q2 Q3 < <(free_ports 14)
WORK="$(mktemp -d -t dynkv-mcbench.XXXXXX)"
PIDS=()
cleanup() {
  local rc=$?
  stop_pids "${PIDS[@]}"
  if [[ $rc -ne 0 ]]; then echo "== logs kept in $WORK"; tail -n 20 "$WORK"/*.log 2>/dev/null || true
  else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # PORT PID NAME
  local i
  for i in $(seq 100); do
    nc -z "$HOST" "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "FAIL: $3 exited"; return 1; }
    sleep 0.1
  done
  echo "FAIL: $3 is not listening on $1"; return 1
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
memcached -u "$(id -un)" -l "$HOST" -p "$MPORT" -U 0 -t 4 -m 1024 -B ascii >"$WORK/memcached.log" 2>&1 &
PIDS+=("$!"); wait_port "$MPORT" "$!" memcached

mkdir -p "$WORK/single"
"$DYNKV_BIN" --port "$D1" --cluster-port "$D1C" --metrics-port "$D1M" --memcache-port "$D1MC" \
  --data-dir "$WORK/single" --fsync everysec --node-name single >"$WORK/single.log" 2>&1 &
PIDS+=("$!"); wait_port "$D1MC" "$!" "dynkv single node"

CLUSTER_SERVERS=""
if [[ "$CLUSTER" == 1 ]]; then
  ports=("$P1 $P1C $Q1" "$P2 $P2C $Q2" "$P3 $P3C $Q3")
  for i in 0 1 2; do
    read -r p c q <<<"${ports[$i]}"
    join=(); [[ $i -gt 0 ]] && join=(--join "$HOST:$P1C")
    mkdir -p "$WORK/n$i"
    "$DYNKV_BIN" --port "$p" --cluster-port "$c" --metrics-port 0 --memcache-port "$q" \
      --data-dir "$WORK/n$i" --fsync everysec --node-name "n$((i + 1))" --n 3 --r 2 --w 2 \
      --cluster-secret bench-secret "${join[@]}" >"$WORK/n$i.log" 2>&1 &
    PIDS+=("$!"); wait_port "$q" "$!" "dynkv n$((i + 1))"
    CLUSTER_SERVERS+="${CLUSTER_SERVERS:+,}$HOST:$q"
  done
  # every node must see three members before the load starts
  for i in $(seq 100); do
    [[ "$(redis-cli -h "$HOST" -p "$P3" DYN.MEMBERS 2>/dev/null | grep -c '^up$')" == 3 ]] && break
    sleep 0.2
  done
fi

cfg() { # SET_SHARE GET_SHARE
  printf 'key\n64 64 1\nvalue\n%s %s 1\ncmd\n0 %s\n1 %s\n' "$DATA" "$DATA" "$1" "$2"
}
cfg 1.0 0.0 >"$WORK/set.cfg"
cfg 0.1 0.9 >"$WORK/mixed.cfg"

declare -A TPS
run() { # NAME SERVERS WORKLOAD
  local out
  echo "-- $1 $3: memcaslap -s $2 -T $THREADS -c $CLIENTS -t ${SECS}s" >&2
  out="$(timeout $((SECS * 3 + 60)) memcaslap -s "$2" -T "$THREADS" -c "$CLIENTS" -t "${SECS}s" \
    -F "$WORK/$3.cfg" -X "$DATA" 2>&1)" || { echo "$out"; echo "FAIL: memcaslap against $1"; return 1; }
  TPS[$1,$3]="$(grep -oE 'TPS: [0-9]+' <<<"$out" | tail -1 | awk '{print $2}')"
  [[ -n "${TPS[$1,$3]}" ]] || { echo "$out"; echo "FAIL: no TPS from $1 $3"; return 1; }
  echo "   ${TPS[$1,$3]} ops/s" >&2
}
TARGETS=("memcached $HOST:$MPORT" "single $HOST:$D1MC")
[[ -n "$CLUSTER_SERVERS" ]] && TARGETS+=("cluster $CLUSTER_SERVERS")
for w in set mixed; do
  for t in "${TARGETS[@]}"; do
    read -r name servers <<<"$t"
    run "$name" "$servers" "$w"
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
{
  echo "# memcached-protocol benchmark: dynkv vs memcached"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), host: $(nproc) cores, $(uname -sr), load average before the run: $LOAD_BEFORE"
  echo "- client and servers share the machine; one target at a time"
  echo "- memcached $(memcached -V | awk '{print $2}') (-t 4, -B ascii); dynkv $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'), --fsync everysec; cluster: 3 nodes, N=3 R=2 W=2, load spread over the three"
  echo "- command: \`memcaslap -T $THREADS -c $CLIENTS -t ${SECS}s -X $DATA\`, 64-byte keys; set = 100% set, mixed = 90% get / 10% set"
  echo
  if [[ -n "$CLUSTER_SERVERS" ]]; then
    echo "| workload | memcached ops/s | dynkv 1 node ops/s | 1 node / memcached | dynkv 3 nodes ops/s | 3 nodes / memcached |"
    echo "|----------|----------------:|-------------------:|-------------------:|--------------------:|--------------------:|"
  else
    echo "| workload | memcached ops/s | dynkv 1 node ops/s | 1 node / memcached |"
    echo "|----------|----------------:|-------------------:|-------------------:|"
  fi
  for w in set mixed; do
    m="${TPS[memcached,$w]}" s="${TPS[single,$w]}"
    if [[ -n "$CLUSTER_SERVERS" ]]; then
      c="${TPS[cluster,$w]}"
      echo "| $w | $m | $s | $(ratio "$s" "$m") | $c | $(ratio "$c" "$m") |"
    else
      echo "| $w | $m | $s | $(ratio "$s" "$m") |"
    fi
  done
} >"$WORK/table.md"
echo; cat "$WORK/table.md"
mkdir -p "$(dirname "$OUT")"; cp "$WORK/table.md" "$OUT"
echo; echo "PASS: benchmark complete, table written to $OUT"
