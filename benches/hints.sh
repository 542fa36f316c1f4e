#!/usr/bin/env bash
# benches/hints.sh — how long a backlog of hints takes to drain on loopback.
#
# Starts a 3-node dynkv cluster (N=3 R=2 W=2, --fsync everysec) on free
# loopback ports, kills node 3 (SIGKILL), writes $KEYS keys through node 1
# with redis-cli --pipe (node 1 keeps a hint for node 3 per key: with three
# nodes and N=3 there is no fallback), restarts node 3 and times until no
# hint is pending anywhere (DYN.HINTS on nodes 1 and 2 empty). Checks that
# node 3 then holds a sample of the keys (DYN.DEBUG LOCAL).
#
# Env: KEYS=20000, DYNKV_BIN (default target/release/dynkv).
# Prints "hints: N drained in S s (R hints/s)"; exits non-zero on failure.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib.sh"
KEYS="${KEYS:-20000}"
DYNKV_BIN="${DYNKV_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/dynkv}"
[[ -x "$DYNKV_BIN" ]] || (cd "$ROOT" && cargo build --release)
for tool in redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found"; exit 2; }
done
TMP="$(mktemp -d)"
read -r P1 P2 P3 C1 C2 C3 M1 M2 M3 <<<"$(free_ports 9)"
PIDS=()
cleanup() { stop_pids "${PIDS[@]}" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
# Every member shares one cluster secret (cluster-port authentication).
CLUSTER_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
start() { # start i port cport mport [join]
  local i=$1; shift
  local args=(--port "$1" --cluster-port "$2" --metrics-port "$3" --data-dir "$TMP/n$i" --node-name "n$i" --fsync everysec --cluster-secret "$CLUSTER_SECRET")
  [[ $# -ge 4 ]] && args+=(--join "127.0.0.1:$4")
  "$DYNKV_BIN" "${args[@]}" >"$TMP/n$i.log" 2>&1 &
  PIDS+=($!)
  echo $!
}
wait_port() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "FAIL: port $1"; exit 1; }
start 1 "$P1" "$C1" "$M1" >/dev/null; wait_port "$P1"
start 2 "$P2" "$C2" "$M2" "$C1" >/dev/null; wait_port "$P2"
N3=$(start 3 "$P3" "$C3" "$M3" "$C1"); wait_port "$P3"
for _ in $(seq 100); do
  [[ $(redis-cli -p "$P1" dyn.members | grep -c '^up$') -eq 3 ]] && break; sleep 0.2
done
kill -9 "$N3"; sleep 0.5
python3 -c "
import sys
for i in range($KEYS):
    k, v = f'hint:{i}', 'x' * 100
    sys.stdout.write(f'*3\r\n\$3\r\nSET\r\n\${len(k)}\r\n{k}\r\n\${len(v)}\r\n{v}\r\n')
" | redis-cli -p "$P1" --pipe >/dev/null
pending() { redis-cli -p "$1" dyn.hints | awk 'NR%2==0 {s+=$1} END {print s+0}'; }
for _ in $(seq 50); do
  [[ $(redis-cli -p "$P1" dyn.members | grep -c '^down$') -ge 1 ]] && break; sleep 0.2
done
BEFORE=$(( $(pending "$P1") + $(pending "$P2") ))
start 3 "$P3" "$C3" "$M3" >/dev/null; wait_port "$P3"
T0=$(date +%s.%N)
for _ in $(seq 1200); do
  LEFT=$(( $(pending "$P1") + $(pending "$P2") ))
  [[ $LEFT -eq 0 ]] && break; sleep 0.05
done
T1=$(date +%s.%N)
[[ $LEFT -eq 0 ]] || { echo "FAIL: $LEFT hints still pending after 60 s"; exit 1; }
SECS=$(python3 -c "print(f'{$T1-$T0:.2f}')")
RATE=$(python3 -c "print(int($BEFORE/max($T1-$T0,0.001)))")
echo "hints: $BEFORE drained in $SECS s ($RATE hints/s; goal: 20,000 in < 5 s)"
MISSING=0
for KEY in $(redis-cli -p "$P1" --scan | head -100); do
  redis-cli -p "$P3" dyn.debug local "$KEY" | grep -q "xxx" || MISSING=$((MISSING + 1))
done
[[ $MISSING -eq 0 ]] || { echo "FAIL: node 3 lacks $MISSING of 100 sampled keys"; exit 1; }
