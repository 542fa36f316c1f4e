#!/usr/bin/env bash
# benches/blpop_wake.sh — how long a client blocked in BLPOP waits after an
# RPUSH: redis-server (push and pop on the same server) next to a 3-node
# dynkv cluster (N=3 R=2 W=2) with the BLPOP on node 3 and the RPUSH
# through node 1. Prints p50/p99/max of ROUNDS wake-ups (default 200), in ms,
# measured from just before the RPUSH is sent to BLPOP's reply.
#
#   benches/blpop_wake.sh
#   ROUNDS=50 benches/blpop_wake.sh
# Needs redis-server and python3 with redis-py (VENV, default compat-tests/.venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/lib.sh"
HOST=127.0.0.1
DYNKV_BIN="${DYNKV_BIN:-$ROOT/target/release/dynkv}"
VENV="${VENV:-$ROOT/compat-tests/.venv}"
PY="$VENV/bin/python"
ROUNDS="${ROUNDS:-200}"
[[ -x "$DYNKV_BIN" ]] || (cd "$ROOT" && cargo build --release)
read -r -a P < <(free_ports 10)
WORK="$(mktemp -d -t dynkv-wake.XXXXXX)"
PIDS=()
trap 'stop_pids "${PIDS[@]}"; rm -rf "$WORK"' EXIT
redis-server --port "${P[0]}" --bind "$HOST" --save '' >"$WORK/redis.log" 2>&1 &
PIDS+=($!); wait_ping "${P[0]}" "$!" redis-server
SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
for i in 0 1 2; do
  join=(); [[ $i -gt 0 ]] && join=(--join "$HOST:${P[4]}")
  "$DYNKV_BIN" --bind "$HOST" --port "${P[$((1 + i))]}" --cluster-port "${P[$((4 + i))]}" \
    --metrics-port "${P[$((7 + i))]}" --data-dir "$WORK/n$i" --node-name "n$((i + 1))" \
    --n 3 --r 2 --w 2 --cluster-secret "$SECRET" "${join[@]}" >"$WORK/n$i.log" 2>&1 &
  PIDS+=($!); wait_ping "${P[$((1 + i))]}" "$!" "dynkv node $((i + 1))"
done
for _ in $(seq 300); do
  ups="$(redis-cli -p "${P[3]}" DYN.MEMBERS 2>/dev/null | grep -cx up || true)"
  [[ "$ups" == 3 ]] && break; sleep 0.2
done
"$PY" - "$ROUNDS" "${P[0]}" "${P[1]}" "${P[3]}" <<'PYEOF'
import statistics, sys, threading, time, redis
rounds, redis_port, push_port, pop_port = map(int, sys.argv[1:])

def measure(push_port, pop_port):
    pusher = redis.Redis(port=push_port)
    popper = redis.Redis(port=pop_port, socket_timeout=30)
    watcher = redis.Redis(port=pop_port)
    waits = []
    for n in range(rounds):
        key = "wake:%d" % n
        got = {}
        t = threading.Thread(target=lambda: got.update(r=popper.blpop(key, 10), at=time.perf_counter()))
        t.start()
        while int(watcher.info("clients")["blocked_clients"]) < 1:
            time.sleep(0.001)
        sent = time.perf_counter()
        pusher.rpush(key, "x")
        t.join()
        assert got["r"] is not None, "BLPOP timed out"
        waits.append((got["at"] - sent) * 1000)
    waits.sort()
    return waits[len(waits) // 2], waits[int(len(waits) * 0.99) - 1], waits[-1]

r = measure(redis_port, redis_port)
d = measure(push_port, pop_port)
print("| system | p50 ms | p99 ms | max ms |")
print("|---|---|---|---|")
print("| redis-server (same server) | %.2f | %.2f | %.2f |" % r)
print("| dynkv 3 nodes (RPUSH node 1, BLPOP node 3) | %.2f | %.2f | %.2f |" % d)
PYEOF
