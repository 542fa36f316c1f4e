#!/usr/bin/env bash
# compat-tests/run.sh — Redis client compatibility suite for dynkv.
#
# Starts one dynkv node (fresh temp data dir, free ports, killed on exit) and runs:
#   a. compat-tests/redis_cli_session.sh  — scripted redis-cli session, inline
#      commands, `redis-cli --pipe` mass insert of 100k keys (values checked)
#   b. compat-tests/test_redis_py.py      — pytest suite with the latest redis-py
#      (str/bytes, pipelines, RESP3, expiry, errors, binary safety, DYN.*)
#   b2. compat-tests/test_transactions.py — redis-py pipeline() (MULTI/EXEC) and
#      WATCH, Django's Redis cache set_many, redis://host/N database URLs
#   b3. compat-tests/test_scripting.py — redis-py Lock (Lua release/extend),
#      register_script (EVALSHA/NOSCRIPT), scripts in a pipeline, cjson, EVAL_RO,
#      the `limits` fixed- and sliding-window limiters, django-redis incr/decr
#   b4. compat-tests/test_pubsub.py — redis-py PubSub: get_message, patterns,
#      a run_in_thread listener getting 500 messages in order
#   b5. compat-tests/test_queues.py — RQ 1.11: 1,000 jobs enqueued, a worker process
#      completes every one (RQ_JOBS)
#   c. redis-benchmark -t ping,set,get,incr,sadd,hset,spop,zadd,zpopmin,mset -n 100000 -q — no error lines,
#      all 6 result lines present, counter:__rand_int__ >= 100000 afterwards
#   d. --requirepass on a second instance: NOAUTH/WRONGPASS/AUTH, redis-cli -a,
#      HELLO 3 AUTH, redis-py password=
#   e. (dynkv only) Prometheus text from http://HOST:METRICS_PORT/metrics
#   f. (dynkv only, first, on the fresh node) /metrics parsed by prometheus_client:
#      every family README lists, with HELP text, untouched ones at 0; other paths 404
#   g. compat-tests/redis_cli_hints.sh — redis-cli's interactive argument hints
#      (from COMMAND DOCS) read off a tmux pane; skipped if tmux is missing
#   h. compat-tests/tls.sh: redis-cli --tls and redis-py ssl=True on --tls-port
#      (test CA made with openssl), --tls-auth-clients yes and no
#   c2. redis-benchmark's default test list (lists included) -n LIST_BENCH_N
#      (default 1000): no error lines, every test's result line present
#   j. (dynkv only) redis-benchmark's default test list against a 3-node cluster
#      through benches/cluster.sh (CLUSTER_BENCH_N requests, default 500)
#   l. (dynkv only) compat-tests/cluster_clients.sh — redis-cli -c, redis-py RedisCluster
#      and redis-benchmark --cluster on a 3-node cluster that a 4th node joins
#   k. compat-tests/memcache.sh — memccapable, libmemcached-tools, pymemcache and
#      Perl Cache::Memcached on dynkv's memcached port (with DYNKV_TARGET=redis:
#      on a real memcached, the same checks)
#
# Env:
#   DYNKV_BIN=path      dynkv binary to use (default target/release/dynkv, built
#                       with `cargo build --release` if missing and DYNKV_BIN unset)
#   DYNKV_TARGET=redis  start a real redis-server instead (validates the suite;
#                       DYN.* checks are skipped)
#   VENV=dir            python venv with redis+pytest (default compat-tests/.venv,
#                       created if missing)
#   BENCH_N=n           requests for step c (default 100000)
#   MASS_N=n            keys for the --pipe mass insert (default 100000)
# Exits non-zero if any step fails; prints PASS/FAIL lines and a summary.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
. "$ROOT/scripts/lib.sh"
TARGET="${DYNKV_TARGET:-dynkv}"
export DYNKV_TARGET="$TARGET"
BENCH_N="${BENCH_N:-100000}"
VENV="${VENV:-$HERE/.venv}"
HOST=127.0.0.1

for tool in redis-cli redis-benchmark python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (run scripts/test-all.sh or apt-get install redis-tools python3-venv)"; exit 2; }
done

# --- python venv with redis-py + pytest ---
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import redis, pytest, prometheus_client, django, django_redis, limits, rq, pymemcache, meta_memcache' 2>/dev/null; then
  echo "== creating venv $VENV (redis, pytest, prometheus_client, django, django-redis, limits, rq, pymemcache, meta-memcache)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade redis pytest prometheus_client django django-redis limits 'rq==1.11.1' pymemcache meta-memcache
fi
PY="$VENV/bin/python"
echo "== redis-py $("$PY" -c 'import redis; print(redis.__version__)'), pytest $("$PY" -c 'import pytest; print(pytest.__version__)')"

# --- free ports (client, cluster, metrics) ---
read -r PORT CPORT MPORT APORT ACPORT AMPORT MCPORT < <(free_ports 7)

WORK="$(mktemp -d -t dynkv-compat.XXXXXX)"
PIDS=()
cleanup() {
  local rc=$? p
  stop_pids "${PIDS[@]}"
  if [[ $rc -ne 0 ]]; then
    for p in "$WORK"/*.log; do
      [[ -f "$p" ]] || continue
      echo "== last 30 lines of $p:"; tail -n 30 "$p" || true
    done
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ "$TARGET" == "redis" ]]; then
  command -v redis-server >/dev/null || { echo "FAIL: redis-server not found"; exit 2; }
else
  if [[ -z "${DYNKV_BIN:-}" ]]; then
    DYNKV_BIN="$ROOT/target/release/dynkv"
    if [[ ! -x "$DYNKV_BIN" ]]; then
      echo "== building dynkv (cargo build --release)"
      (cd "$ROOT" && cargo build --release)
    fi
  fi
  [[ -x "$DYNKV_BIN" ]] || { echo "FAIL: dynkv binary $DYNKV_BIN not found"; exit 2; }
fi

# start_server NAME PORT CLUSTER_PORT METRICS_PORT [extra args: --requirepass PW]
# Starts dynkv (or redis-server), waits for it to answer, sets STARTED_PID.
STARTED_PID=""
start_server() {
  local name="$1" port="$2" cport="$3" mport="$4"; shift 4
  mkdir -p "$WORK/$name"
  if [[ "$TARGET" == "redis" ]]; then
    echo "== starting redis-server '$name' on port $port (DYNKV_TARGET=redis)"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK/$name" "$@" \
      >"$WORK/$name.log" 2>&1 &
  else
    echo "== starting $DYNKV_BIN '$name' on port $port (cluster $cport, metrics $mport, data $WORK/$name)"
    # Only the servers asked for one get a memcached port (not 11211, which
    # a real memcached may hold).
    local mc=(--memcache-port 0)
    [[ " $* " == *" --memcache-port "* ]] && mc=()
    "$DYNKV_BIN" --port "$port" --cluster-port "$cport" --metrics-port "$mport" \
      --data-dir "$WORK/$name" --fsync everysec --node-name "$name" "${mc[@]}" "$@" \
      >"$WORK/$name.log" 2>&1 &
  fi
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  local i reply
  for i in $(seq 100); do
    # with --requirepass the reply is a NOAUTH error, which also proves it is up
    reply="$(redis-cli -h "$HOST" -p "$port" PING 2>&1 || true)"
    if [[ "$reply" == "PONG" || "$reply" == *NOAUTH* ]]; then return 0; fi
    if ! kill -0 "$STARTED_PID" 2>/dev/null; then echo "FAIL: server '$name' exited during startup"; return 1; fi
    sleep 0.2
  done
  echo "FAIL: server '$name' did not answer PING within 20s (last reply: $reply)"
  return 1
}

if [[ "$TARGET" == "redis" ]]; then
  start_server compat1 "$PORT" "$CPORT" "$MPORT"
else
  start_server compat1 "$PORT" "$CPORT" "$MPORT" --memcache-port "$MCPORT"
fi
SERVER_PID=$STARTED_PID
echo "== server answers PING on $HOST:$PORT"

FAILED=()
step() { # step NAME CMD...
  local name="$1"; shift
  echo
  echo "################ $name"
  if "$@"; then
    echo "PASS: step $name"
  else
    echo "FAIL: step $name"
    FAILED+=("$name")
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "FAIL: server process died during step $name"
    FAILED+=("server-alive-after-$name")
    summary
  fi
}
summary() {
  echo
  if [[ ${#FAILED[@]} -eq 0 ]]; then
    echo "==== compat-tests ($TARGET): ALL PASSED"
    exit 0
  fi
  echo "==== compat-tests ($TARGET): FAILED steps: ${FAILED[*]}"
  exit 1
}

# f. the fresh node's /metrics through prometheus_client's parser (first: the
#    node has served only the readiness PING)
fresh_metrics_checks() {
  "$PY" - "$HOST" "$MPORT" "$ROOT/README.md" <<'PYEOF'
import sys, urllib.request, urllib.error
from prometheus_client.parser import text_string_to_metric_families
host, port, readme = sys.argv[1], sys.argv[2], sys.argv[3]
documented = [l.split("`")[1] for l in open(readme) if l.startswith("| `dynkv_")]
body = urllib.request.urlopen("http://%s:%s/metrics" % (host, port), timeout=10).read().decode()
families = {f.name: f for f in text_string_to_metric_families(body)}
ok = True
def check(name, cond, got=""):
    global ok
    print(("PASS: " if cond else "FAIL: ") + name + ("" if cond else "\n      got: %s" % got))
    ok = ok and cond
check("README documents metric families", len(documented) >= 10, documented)
# The parser names a counter family without its _total suffix.
def family(name):
    return families.get(name) or families.get(name[:-len("_total")] if name.endswith("_total") else name)
# Touched by the readiness PING / its connection before this check ran.
touched = {"dynkv_commands_total", "dynkv_command_duration_seconds", "dynkv_connected_clients"}
for name in documented:
    f = family(name)
    check("%s exported with HELP" % name, f is not None and bool(f.documentation), f and f.documentation)
    if f is None or name in touched:
        continue
    nonzero = [s for s in f.samples if s.value != 0]
    check("%s at 0 on a fresh node" % name, f.samples and not nonzero, nonzero[:3])
extra = sorted(n for n in families if not any(family(d) is families[n] for d in documented))
check("every exported family is documented", not extra, extra)
for path in ("/", "/foo", "/metrics/x"):
    try:
        code = urllib.request.urlopen("http://%s:%s%s" % (host, port, path), timeout=10).status
    except urllib.error.HTTPError as e:
        code = e.code
    check("GET %s -> 404" % path, code == 404, code)
sys.exit(0 if ok else 1)
PYEOF
}
if [[ "$TARGET" != "redis" ]]; then
  step fresh-metrics fresh_metrics_checks
fi

# g. redis-cli interactive hints (tmux)
step redis-cli-hints "$HERE/redis_cli_hints.sh" "$HOST" "$PORT"

# a. redis-cli session
step redis-cli "$HERE/redis_cli_session.sh" "$HOST" "$PORT"

# b. redis-py
step redis-py env DYNKV_HOST="$HOST" DYNKV_PORT="$PORT" \
  "$PY" -m pytest -p no:cacheprovider -q -rfEs "$HERE/test_redis_py.py"

# b2. transactions and databases: redis-py pipeline()/WATCH, Django's cache,
# redis://host/N URLs
step transactions env DYNKV_HOST="$HOST" DYNKV_PORT="$PORT" \
  "$PY" -m pytest -p no:cacheprovider -q -rfEs "$HERE/test_transactions.py"

# b3. Lua scripting: redis-py Lock, register_script, scripts in pipelines
step scripting env DYNKV_HOST="$HOST" DYNKV_PORT="$PORT" \
  "$PY" -m pytest -p no:cacheprovider -q -rfEs "$HERE/test_scripting.py"

# b4. Pub/Sub through redis-py
step pubsub env DYNKV_HOST="$HOST" DYNKV_PORT="$PORT" \
  "$PY" -m pytest -p no:cacheprovider -q -rfEs "$HERE/test_pubsub.py"

# b5. RQ job queue: enqueue, a worker process completes every job
step rq env DYNKV_HOST="$HOST" DYNKV_PORT="$PORT" DYNKV_RQ_JOBS="${RQ_JOBS:-1000}" \
  "$PY" -m pytest -p no:cacheprovider -q -rfEs "$HERE/test_queues.py"

# c. redis-benchmark
bench() {
  local out lines
  out="$(timeout 900 redis-benchmark -h "$HOST" -p "$PORT" -t ping,set,get,incr,sadd,hset,spop,zadd,zpopmin,mset -n "$BENCH_N" -q 2>&1 | tr '\r' '\n')" || {
    echo "FAIL: redis-benchmark exited non-zero"; echo "$out" | tail -n 20; return 1; }
  lines="$(grep -E '^[A-Z_]+( \([0-9]+ keys\))?: [0-9.]+ requests per second' <<<"$out" || true)"
  echo "$lines"
  local ok=0
  if grep -qiE 'err' <<<"$out"; then
    echo "FAIL: redis-benchmark output contains error lines:"; grep -iE 'err' <<<"$out" | sort | uniq -c | head -n 10
    ok=1
  fi
  local t
  for t in PING_INLINE PING_MBULK SET GET INCR SADD HSET SPOP ZADD ZPOPMIN MSET; do
    if grep -qE "^$t( \([0-9]+ keys\))?: [0-9.]+ requests per second" <<<"$lines"; then
      echo "PASS: redis-benchmark $t result line"
    else
      echo "FAIL: redis-benchmark $t result line missing"; ok=1
    fi
  done
  local ctr
  ctr="$(redis-cli -h "$HOST" -p "$PORT" --raw GET 'counter:__rand_int__' 2>&1 || true)"
  if [[ "$ctr" =~ ^[0-9]+$ ]] && (( ctr >= BENCH_N )); then
    echo "PASS: GET counter:__rand_int__ = $ctr >= $BENCH_N"
  else
    echo "FAIL: GET counter:__rand_int__: expected integer >= $BENCH_N, got '$ctr'"; ok=1
  fi
  # redis-benchmark SET/MSET write 3-byte (-d default) values to key:__rand_int__
  local v
  v="$(redis-cli -h "$HOST" -p "$PORT" --raw STRLEN 'key:__rand_int__' 2>&1 || true)"
  if [[ "$v" == "3" ]]; then
    echo "PASS: STRLEN key:__rand_int__ = 3"
  else
    echo "FAIL: STRLEN key:__rand_int__: expected 3, got '$(head -c 80 <<<"$v")'"; ok=1
  fi
  return $ok
}
step redis-benchmark bench

# c2. redis-benchmark's default test list (no -t: the list tests LPUSH, RPUSH,
# LPOP, RPOP, LRANGE_100..600 among them): no error line, every test reported
bench_default() {
  local out ok=0 t n="${LIST_BENCH_N:-1000}"
  out="$(timeout 900 redis-benchmark -h "$HOST" -p "$PORT" -n "$n" -q 2>&1 | tr '\r' '\n')" || {
    echo "FAIL: redis-benchmark (default tests) exited non-zero"; echo "$out" | tail -n 20; return 1; }
  if grep -qE '(^|[^A-Z])ERR ' <<<"$out"; then
    echo "FAIL: redis-benchmark (default tests) printed error lines:"
    grep -E '(^|[^A-Z])ERR ' <<<"$out" | sort | uniq -c | head -n 10; ok=1
  fi
  for t in PING_INLINE PING_MBULK SET GET INCR LPUSH RPUSH LPOP RPOP SADD HSET SPOP ZADD ZPOPMIN \
           'LPUSH (needed to benchmark LRANGE)' 'LRANGE_100 (first 100 elements)' \
           'LRANGE_300 (first 300 elements)' 'LRANGE_500 (first 500 elements)' \
           'LRANGE_600 (first 600 elements)' 'MSET (10 keys)'; do
    if grep -qF "$t: " <<<"$out" && grep -F "$t: " <<<"$out" | grep -q 'requests per second'; then
      echo "PASS: redis-benchmark $t result line"
    else
      echo "FAIL: redis-benchmark $t result line missing"; ok=1
    fi
  done
  return $ok
}
step redis-benchmark-default bench_default

# d. --requirepass on a second, short-lived instance
auth_checks() {
  local pw="s3cret-pw" ok=0 got
  start_server compat-auth "$APORT" "$ACPORT" "$AMPORT" --requirepass "$pw" || return 1
  local pid=$STARTED_PID
  ac() { redis-cli -h "$HOST" -p "$APORT" --no-raw "$@" 2>&1 || true; }
  expect() { # NAME REGEX GOT
    if [[ "$3" =~ $2 ]]; then echo "PASS: $1"; else echo "FAIL: $1"; echo "      expected: /$2/"; echo "      got:      $3"; ok=1; fi
  }
  expect "PING without AUTH -> NOAUTH" '^\(error\) NOAUTH' "$(ac PING)"
  expect "SET without AUTH -> NOAUTH" '^\(error\) NOAUTH' "$(ac SET k v)"
  expect "AUTH wrong password -> WRONGPASS" '^\(error\) (WRONGPASS|ERR invalid password)' "$(ac AUTH wrong)"
  got="$(printf 'AUTH %s\nSET authk v1\nGET authk\n' "$pw" | redis-cli -h "$HOST" -p "$APORT" 2>&1 || true)"
  expect "AUTH pw; SET; GET on one connection" $'^OK\nOK\nv1$' "$got"
  expect "redis-cli -a pw GET" '^"v1"$' "$(ac -a "$pw" --no-auth-warning GET authk)"
  expect "HELLO 3 AUTH default wrong -> WRONGPASS" '^\(error\) (WRONGPASS|ERR invalid password)' "$(ac HELLO 3 AUTH default wrong)"
  got="$("$PY" - "$HOST" "$APORT" "$pw" <<'PYEOF' 2>&1 || true
import sys, redis
host, port, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = []
for proto in (2, 3):
    c = redis.Redis(host=host, port=port, password=pw, protocol=proto, decode_responses=True)
    out.append("%s %s" % (c.ping(), c.get("authk")))
    c.close()
try:
    redis.Redis(host=host, port=port, password="bad").ping()
    out.append("no-error")
except redis.AuthenticationError:
    out.append("auth-error")
except redis.ResponseError as e:
    out.append("response-error: %s" % e)
print(" | ".join(out))
PYEOF
)"
  expect "redis-py password= (RESP2, RESP3, wrong pw)" '^True v1 \| True v1 \| auth-error$' "$got"
  kill -0 "$pid" 2>/dev/null || { echo "FAIL: auth server died"; ok=1; }
  return $ok
}
step requirepass auth_checks

# e. Prometheus metrics endpoint (dynkv only)
metrics_checks() {
  "$PY" - "$HOST" "$MPORT" <<'PYEOF'
import re, sys, urllib.request
host, port = sys.argv[1], sys.argv[2]
url = "http://%s:%s/metrics" % (host, port)
try:
    resp = urllib.request.urlopen(url, timeout=10)
    status, body = resp.status, resp.read().decode("utf-8", "replace")
except Exception as e:
    print("FAIL: GET %s: %s" % (url, e)); sys.exit(1)
ok = True
def check(name, cond, got=""):
    global ok
    print(("PASS: " if cond else "FAIL: ") + name + ("" if cond else "\n      got: %s" % got))
    ok = ok and cond
check("GET /metrics -> 200", status == 200, status)
samples = [l for l in body.splitlines() if l and not l.startswith("#")]
bad = [l for l in samples if not re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eEnaNIinf]+( [0-9]+)?$', l)]
check("metrics are in Prometheus text format", samples and not bad, bad[:3] or body[:200])
check("metrics include # TYPE lines", "# TYPE " in body, body[:200])
check("metrics include dynkv_* series", any(l.startswith("dynkv_") for l in samples), samples[:5])
sys.exit(0 if ok else 1)
PYEOF
}
if [[ "$TARGET" != "redis" ]]; then
  step metrics metrics_checks
fi

# i. CLUSTER KEYSLOT equals a real redis-server's (hash tags included)
if [[ "$TARGET" != "redis" ]]; then
  step keyslot env PY="$PY" "$HERE/keyslot.sh" "$HOST" "$PORT"
fi

# j. redis-benchmark's default test list (the data-type and list tests among
# them) against a 3-node cluster (N=3 R=2 W=2), next to redis-server and a
# single node: no error line, every test reported (benches/cluster.sh at a
# small size; full size: benches/types.sh and benches/lists.sh)
if [[ "$TARGET" != "redis" ]]; then
  step redis-benchmark-cluster env N="${CLUSTER_BENCH_N:-500}" DYNKV_BIN="$DYNKV_BIN" \
    TESTS=default OUT="$WORK/default-cluster.md" \
    "$ROOT/benches/cluster.sh"
fi

# l. Redis Cluster clients on a 3-node cluster that grows to 4: redis-cli -c,
# redis-py RedisCluster (follows MOVED to the new owners, no forwarded request),
# redis-benchmark --cluster (compat-tests/cluster_clients.sh)
if [[ "$TARGET" != "redis" ]]; then
  step cluster-clients env DYNKV_BIN="$DYNKV_BIN" VENV="$VENV" "$HERE/cluster_clients.sh"
fi

# k. memcached clients: on compat1's memcached port, or on a real memcached
memcache_checks() {
  if [[ "$TARGET" == "redis" ]]; then
    command -v memcached >/dev/null || { echo "FAIL: memcached not found"; return 1; }
    memcached -u "$(id -un)" -l "$HOST" -p "$MCPORT" -U 0 -B ascii >"$WORK/memcached.log" 2>&1 &
    PIDS+=("$!")
    local i
    for i in $(seq 50); do
      nc -z "$HOST" "$MCPORT" 2>/dev/null && break
      sleep 0.1
    done
    MC_TARGET=memcached PY="$PY" "$HERE/memcache.sh" "$HOST" "$MCPORT"
  else
    MC_TARGET=dynkv DYNKV_PORT="$PORT" PY="$PY" "$HERE/memcache.sh" "$HOST" "$MCPORT"
  fi
}
step memcache memcache_checks

# h. TLS on the client port (its own short-lived servers)
step tls env DYNKV_TARGET="$TARGET" DYNKV_BIN="${DYNKV_BIN:-}" PY="$PY" "$HERE/tls.sh"

summary
