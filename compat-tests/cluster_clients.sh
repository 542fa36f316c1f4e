#!/usr/bin/env bash
# compat-tests/cluster_clients.sh — Redis Cluster clients against a dynkv cluster.
#
# Starts three dynkv nodes (N=3 R=2 W=2, fresh temp dirs, free loopback ports, each with a
# --cluster-client-port that the slot map advertises), then:
#   1. redis-cli -c: SET through one node, GET through each of the others
#   2. test_cluster_clients.py (redis-py RedisCluster): slot map, pipelines, a fourth
#      node joins (started by the test), the client follows MOVED to the new owners,
#      every key then goes to a node of its preference list (forwarded_requests +0)
#   3. redis-benchmark --cluster -t set,get against the four nodes: no error line, both
#      result lines, and no request forwarded by any node
#   4. redis-cli -c again, through the new node, and on node 1's cluster-client port, where
#      keys node 1 no longer serves are redirected (MOVED) to their new owners
#
# Env: DYNKV_BIN (dynkv binary), VENV (python venv with redis + pytest),
#      CLUSTER_CLIENT_N (redis-benchmark requests, default 5000),
#      CLUSTER_CLIENT_KEYS (keys the redis-py test writes, default 400).
# Exits non-zero on the first failure.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
. "$ROOT/scripts/lib.sh"
DYNKV_BIN="${DYNKV_BIN:-$ROOT/target/release/dynkv}"
VENV="${VENV:-$HERE/.venv}"
N="${CLUSTER_CLIENT_N:-5000}"
HOST=127.0.0.1

read -r -a P < <(free_ports 12)
CPORT=("${P[0]}" "${P[1]}" "${P[2]}")
CCPORT=("${P[3]}" "${P[4]}" "${P[5]}")
RPORT=("${P[8]}" "${P[9]}" "${P[10]}")   # --cluster-client-port of nodes 1..3 (node 4: P[11])
WORK="$(mktemp -d -t dynkv-cluster-clients.XXXXXX)"
SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
PIDS=()
cleanup() {
  local rc=$?
  [[ -f "$WORK/c4.pid" ]] && PIDS+=("$(cat "$WORK/c4.pid")")
  stop_pids "${PIDS[@]}"
  if [[ $rc -ne 0 ]]; then
    echo "== logs kept in $WORK"; tail -n 20 "$WORK"/*.log 2>/dev/null || true
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT

for i in 0 1 2; do
  join=()
  [[ $i -gt 0 ]] && join=(--join "$HOST:${CCPORT[0]}")
  "$DYNKV_BIN" --bind "$HOST" --port "${CPORT[$i]}" --cluster-port "${CCPORT[$i]}" \
    --cluster-client-port "${RPORT[$i]}" \
    --metrics-port 0 --memcache-port 0 --data-dir "$WORK/c$((i + 1))" --node-name "c$((i + 1))" \
    --n 3 --r 2 --w 2 --fsync everysec --cluster-secret "$SECRET" "${join[@]}" \
    >"$WORK/c$((i + 1)).log" 2>&1 &
  PIDS+=($!)
  wait_ping "${CPORT[$i]}" "$!" "dynkv node $((i + 1))"
done
for _ in $(seq 300); do
  ok=1
  for p in "${CPORT[@]}"; do
    [[ "$(redis-cli -h "$HOST" -p "$p" DYN.MEMBERS | grep -cx up || true)" == 3 ]] || ok=0
    # ... and the ring committed: every node leads slots.
    redis-cli -h "$HOST" -p "$p" CLUSTER INFO | grep -q '^cluster_size:3' || ok=0
  done
  [[ $ok -eq 1 ]] && break
  sleep 0.2
done
[[ $ok -eq 1 ]] || { echo "FAIL: the 3-node cluster did not form"; exit 1; }

cli_roundtrip() { # KEY VALUE PORT...: SET through the first port, GET through every port
  local key="$1" value="$2" p got
  shift 2
  [[ "$(redis-cli -c -h "$HOST" -p "$1" SET "$key" "$value")" == OK ]] || { echo "FAIL: redis-cli -c SET $key"; return 1; }
  for p in "$@"; do
    got="$(redis-cli -c -h "$HOST" -p "$p" GET "$key")"
    [[ "$got" == "$value" ]] || { echo "FAIL: redis-cli -c -p $p GET $key gave '$got'"; return 1; }
  done
}
for k in alpha beta gamma '{user}:1' '{user}:2'; do
  cli_roundtrip "$k" "v-$k" "${CPORT[@]}"
done
echo "PASS: redis-cli -c through each of 3 nodes"

DYNKV_CLUSTER_PORTS="$(IFS=,; echo "${CPORT[*]}")" DYNKV_CLUSTER_CLIENT_PORTS="$(IFS=,; echo "${RPORT[*]}")" \
  DYNKV_NODE4_PORTS="${P[6]},${P[7]},${P[11]}" \
  DYNKV_JOIN="$HOST:${CCPORT[0]}" DYNKV_SECRET="$SECRET" DYNKV_WORK="$WORK" DYNKV_BIN="$DYNKV_BIN" \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$HERE/test_cluster_clients.py"
ALL=("${CPORT[@]}" "${P[6]}")
echo "PASS: redis-py RedisCluster (a fourth node joined on ${P[6]})"

forwarded() { info_sum forwarded_requests "${ALL[@]}"; }
before="$(forwarded)"
out="$(redis-benchmark -h "$HOST" -p "${CPORT[0]}" --cluster -t set,get -n "$N" -c 20 -q 2>&1 | tr '\r' '\n')"
if grep -qE '(^|[^A-Z])ERR |MOVED|Invalid cluster' <<<"$out"; then
  echo "FAIL: redis-benchmark --cluster:"; echo "$out" | tail -n 20; exit 1
fi
for t in SET GET; do
  grep -qE "^ ?$t: [0-9.]+ requests per second" <<<"$out" || { echo "FAIL: no $t result from redis-benchmark --cluster"; echo "$out" | tail -n 20; exit 1; }
done
hops=$(( $(forwarded) - before ))
[[ $hops -eq 0 ]] || { echo "FAIL: redis-benchmark --cluster caused $hops forwarded requests"; exit 1; }
echo "PASS: redis-benchmark --cluster over 4 nodes, 0 forwarded requests"

for k in alpha '{user}:1' delta; do
  cli_roundtrip "$k" "w-$k" "${P[6]}" "${CPORT[@]}"
done
echo "PASS: redis-cli -c through the new node"

# On a cluster-client port, keys that node does not serve since the join are answered
# MOVED (seen by a plain redis-cli there); redis-cli -c follows the redirect.
redirected=0
for i in $(seq 40); do
  plain="$(redis-cli -h "$HOST" -p "${RPORT[0]}" GET "moved:$i" 2>&1)"
  [[ "$plain" == MOVED* ]] && redirected=$((redirected + 1))
  out="$(redis-cli -c -h "$HOST" -p "${RPORT[0]}" SET "moved:$i" "m$i" 2>&1)"
  [[ "$out" == OK ]] || { echo "FAIL: redis-cli -c SET moved:$i on the cluster-client port: $out"; exit 1; }
  [[ "$(redis-cli -h "$HOST" -p "${CPORT[1]}" GET "moved:$i")" == "m$i" ]] || { echo "FAIL: moved:$i not readable"; exit 1; }
done
[[ $redirected -gt 0 ]] || { echo "FAIL: no key was MOVED on node 1's cluster-client port"; exit 1; }
echo "PASS: redis-cli -c follows MOVED to the new owners ($redirected of 40 keys moved)"
