# scripts/lib.sh — shell helpers shared by compat-tests/ and benches/ scripts.
# Source it: . "$ROOT/scripts/lib.sh"

# free_ports N: prints N free loopback TCP ports (held open together while
# choosing, so they are distinct).
free_ports() {
  python3 - "$1" <<'PYEOF'
import socket, sys
socks, ports = [], []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s); ports.append(s.getsockname()[1])
print(*ports)
PYEOF
}

# stop_pids PID...: SIGTERM each, wait up to 5 s for it to exit, then SIGKILL.
stop_pids() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
}

# wait_ping PORT PID NAME: waits up to 30 s for a server on $HOST (default
# 127.0.0.1) to answer PING; fails early if PID exits.
wait_ping() {
  local i
  for i in $(seq 150); do
    [[ "$(redis-cli -h "${HOST:-127.0.0.1}" -p "$1" PING 2>/dev/null || true)" == "PONG" ]] && return 0
    kill -0 "$2" 2>/dev/null || { echo "FAIL: $3 exited during startup"; return 1; }
    sleep 0.2
  done
  echo "FAIL: $3 did not answer PING"; return 1
}

# info_field PORT FIELD: one field of INFO dynamo of the node on $HOST:PORT.
info_field() {
  redis-cli -h "${HOST:-127.0.0.1}" -p "$1" INFO dynamo 2>/dev/null | tr -d '\r' \
    | awk -F: -v f="$2" '$1 == f {print $2}'
}

# info_sum FIELD PORT...: an integer INFO dynamo field summed over nodes.
info_sum() {
  local field="$1" port sum=0
  shift
  for port in "$@"; do sum=$((sum + $(info_field "$port" "$field"))); done
  echo "$sum"
}
