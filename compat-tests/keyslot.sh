#!/usr/bin/env bash
# compat-tests/keyslot.sh HOST PORT — CLUSTER KEYSLOT of the server under test
# equals a real redis-server's (started here in cluster mode, which
# CLUSTER KEYSLOT needs) for 1,000 random keys, a third of them with hash
# tags, plus Redis's edge cases ({}, unclosed braces, binary bytes).
set -euo pipefail
HOST="$1"; PORT="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../scripts/lib.sh"
PY="${PY:-$HERE/.venv/bin/python}"
# Cluster mode also listens on port + 10000, so the port must be <= 55535.
RPORT=65535
for _ in $(seq 50); do
  read -r RPORT < <(free_ports 1)
  (( RPORT <= 55535 )) && break
done
(( RPORT <= 55535 )) || { echo "FAIL: no free port at or below 55535 for redis-server in cluster mode"; exit 1; }
DIR="$(mktemp -d -t dynkv-keyslot.XXXXXX)"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
  --cluster-enabled yes --cluster-config-file "$DIR/nodes.conf" >"$DIR/redis.log" 2>&1 &
RPID=$!
trap 'kill "$RPID" 2>/dev/null || true; wait "$RPID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
# Cluster mode can take seconds to start on a loaded CI machine: wait up to
# 30 s, and say so (with its log) instead of failing on a refused connection.
up=0
for _ in $(seq 300); do
  [[ "$(redis-cli -p "$RPORT" PING 2>/dev/null || true)" == PONG ]] && { up=1; break; }
  sleep 0.1
done
if [[ $up -ne 1 ]]; then
  echo "FAIL: reference redis-server (cluster mode) did not answer PING on $RPORT"
  tail -n 20 "$DIR/redis.log" || true
  exit 1
fi
"$PY" - "$HOST" "$PORT" "$RPORT" <<'PYEOF'
import random, sys, redis
host, port, rport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ours = redis.Redis(host=host, port=port)
ref = redis.Redis(host="127.0.0.1", port=rport)
rng = random.Random(8)
keys = [b"", b"{", b"}", b"{}", b"{}x", b"x{}", b"{a}", b"a{b}c", b"a{b", b"a}b{c}", b"foo{}{bar}",
        b"{user1000}.following", b"{user1000}.followers", b"\x00\xff{\r\n}"]
while len(keys) < 1000:
    body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24)))
    kind = rng.randrange(3)
    if kind == 0:
        tag = bytes(rng.choice(b"abcxyz0123") for _ in range(rng.randrange(0, 6)))
        body = body[: len(body) // 2] + b"{" + tag + b"}" + body[len(body) // 2 :]
    keys.append(body)
diff = []
for k in keys:
    a, b = ours.execute_command("CLUSTER", "KEYSLOT", k), ref.execute_command("CLUSTER", "KEYSLOT", k)
    if a != b:
        diff.append((k, a, b))
print("PASS" if not diff else "FAIL", "CLUSTER KEYSLOT: %d keys, %d differ from redis-server %s" % (len(keys), len(diff), diff[:3]))
sys.exit(1 if diff else 0)
PYEOF
