#!/usr/bin/env bash
# redis_cli_session.sh HOST PORT
#
# Scripted redis-cli session against a running dynkv (or redis-server) node.
# Checks reply VALUES, not exit codes:
#   - string/counter/expiry/multi-key commands (SET GET INCR EXPIRE TTL MSET MGET
#     DEL EXISTS APPEND STRLEN TYPE SCAN ...) compared with the exact redis-cli output
#   - DYN.PUT / DYN.GET siblings and context-based supersede (skipped when
#     DYNKV_TARGET=redis)
#   - inline (telnet-style) commands over a raw socket
#   - `redis-cli --pipe` mass insert of $MASS_N (default 100000) keys, then DBSIZE
#     and a random sample of ~100 values read back with GET
# Prints one PASS/FAIL line per check; exits 1 if any check failed.
set -euo pipefail

HOST="${1:?usage: $0 HOST PORT}"
PORT="${2:?usage: $0 HOST PORT}"
TARGET="${DYNKV_TARGET:-dynkv}"
MASS_N="${MASS_N:-100000}"
PY="${PYTHON:-python3}"
P="cs$$:"               # key prefix, unique per run

PASS=0
FAIL=0
pass() { echo "PASS: $1"; PASS=$((PASS + 1)); }
fail() {
  echo "FAIL: $1"
  echo "      expected: $(printf '%q' "$2")"
  echo "      got:      $(printf '%q' "$3")"
  FAIL=$((FAIL + 1))
}
check() { # check NAME EXPECTED ACTUAL
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1" "$2" "$3"; fi
}
rc() { redis-cli -h "$HOST" -p "$PORT" --no-raw "$@" 2>&1 || true; }
# t EXPECTED CMD ARGS...   -- run one command, compare its full --no-raw output
t() {
  local exp="$1"; shift
  check "$*" "$exp" "$(rc "$@")"
}
# t_match REGEX CMD ARGS... -- output must match an extended regex
t_match() {
  local re="$1"; shift
  local got; got="$(rc "$@")"
  if [[ "$got" =~ $re ]]; then pass "$* =~ /$re/"; else fail "$*" "/$re/" "$got"; fi
}

echo "== redis-cli session against $HOST:$PORT (target=$TARGET, prefix=$P)"

t 'PONG' PING
t '"hello world"' ECHO "hello world"

# --- strings ---
t 'OK' SET "${P}foo" bar
t '"bar"' GET "${P}foo"
t '(nil)' GET "${P}missing"
t '(integer) 8' APPEND "${P}foo" "bazzz"
t '"barbazzz"' GET "${P}foo"
t '(integer) 8' STRLEN "${P}foo"
t '(integer) 0' STRLEN "${P}missing"
t 'string' TYPE "${P}foo"
t 'none' TYPE "${P}missing"
t '(nil)' SET "${P}foo" other NX
t '"barbazzz"' GET "${P}foo"
t 'OK' SET "${P}foo" other XX
t '"other"' SET "${P}foo" third GET
t '"third"' GET "${P}foo"
t '(nil)' SET "${P}nx" v XX
t '(integer) 1' SETNX "${P}nx" v1
t '(integer) 0' SETNX "${P}nx" v2
t '"v1"' GETSET "${P}nx" v3
t '"v3"' GETDEL "${P}nx"
t '(integer) 0' EXISTS "${P}nx"
t 'OK' SET "${P}empty" ""
t '""' GET "${P}empty"
t '(integer) 0' STRLEN "${P}empty"

# --- counters ---
t '(integer) 1' INCR "${P}ctr"
t '(integer) 2' INCR "${P}ctr"
t '(integer) 12' INCRBY "${P}ctr" 10
t '(integer) 11' DECR "${P}ctr"
t '(integer) 6' DECRBY "${P}ctr" 5
t '(integer) -4' INCRBY "${P}ctr" -10
t '"-4"' GET "${P}ctr"
t '"1.5"' INCRBYFLOAT "${P}flt" 1.5
t '"3.75"' INCRBYFLOAT "${P}flt" 2.25
t '(error) ERR value is not an integer or out of range' INCR "${P}foo"
t 'OK' SET "${P}big" 9223372036854775807
t_match '^\(error\) ERR .*(overflow|out of range)' INCR "${P}big"

# --- expiry ---
t 'OK' SET "${P}exp" v
t '(integer) -1' TTL "${P}exp"
t '(integer) -2' TTL "${P}missing"
t '(integer) 1' EXPIRE "${P}exp" 100
t_match '^\(integer\) (100|99|98)$' TTL "${P}exp"
t_match '^\(integer\) (100000|[1-9][0-9]{4})$' PTTL "${P}exp"
t '(integer) 1' PERSIST "${P}exp"
t '(integer) -1' TTL "${P}exp"
t '(integer) 0' EXPIRE "${P}missing" 100
t 'OK' SET "${P}ex2" v EX 50
t_match '^\(integer\) (50|49|48)$' TTL "${P}ex2"
t 'OK' SET "${P}px" v PX 300
t '"v"' GET "${P}px"
sleep 0.6
t '(nil)' GET "${P}px"
t '(integer) 0' EXISTS "${P}px"
t 'OK' SETEX "${P}sx" 30 v
t_match '^\(integer\) (30|29|28)$' TTL "${P}sx"
t 'OK' SET "${P}sx" v2 KEEPTTL
t_match '^\(integer\) (30|29|28)$' TTL "${P}sx"
t 'OK' SET "${P}sx" v3
t '(integer) -1' TTL "${P}sx"

# --- multi-key ---
t 'OK' MSET "${P}a" 1 "${P}b" 2 "${P}c" 3
t $'1) "1"\n2) "2"\n3) "3"\n4) (nil)' MGET "${P}a" "${P}b" "${P}c" "${P}nope"
t '(integer) 3' EXISTS "${P}a" "${P}b" "${P}c" "${P}nope"
t '(integer) 2' EXISTS "${P}a" "${P}a"
t '(integer) 0' MSETNX "${P}a" x "${P}new" y
t '(nil)' GET "${P}new"
t '(integer) 2' DEL "${P}a" "${P}b" "${P}nope"
t '(integer) 0' EXISTS "${P}a" "${P}b"
t '(integer) 1' UNLINK "${P}c"
t '(nil)' GET "${P}a"

# --- SCAN / KEYS ---
for i in 1 2 3 4 5; do rc SET "${P}scan:$i" "$i" >/dev/null; done
expected_keys="$(printf '%s\n' "${P}scan:1" "${P}scan:2" "${P}scan:3" "${P}scan:4" "${P}scan:5")"
got="$(redis-cli -h "$HOST" -p "$PORT" --scan --pattern "${P}scan:*" 2>&1 | sort || true)"
check "redis-cli --scan --pattern ${P}scan:*" "$expected_keys" "$got"
# manual SCAN loop with MATCH/COUNT, collecting keys across cursors
cursor=0; keys=""; rounds=0
while :; do
  out="$(redis-cli -h "$HOST" -p "$PORT" --raw SCAN "$cursor" MATCH "${P}scan:*" COUNT 3 2>&1 || true)"
  cursor="$(head -n1 <<<"$out")"
  keys+="$(tail -n +2 <<<"$out")"$'\n'
  rounds=$((rounds + 1))
  [[ "$cursor" == "0" || $rounds -gt 100000 ]] && break
  [[ "$cursor" =~ ^[0-9]+$ ]] || break
done
check "SCAN cursor loop MATCH ${P}scan:* COUNT 3" "$expected_keys" "$(grep -v '^$' <<<"$keys" | sort -u)"
got="$(redis-cli -h "$HOST" -p "$PORT" --raw KEYS "${P}scan:*" 2>&1 | sort || true)"
check "KEYS ${P}scan:*" "$expected_keys" "$got"
t_match '^\(integer\) [1-9][0-9]*$' DBSIZE
t_match '^"' RANDOMKEY

# --- Dynamo commands ---
# Parse `redis-cli --no-raw DYN.GET` output:
#   1) "ctx"            (or  1) "")
#   2) 1) "v1"          (or  2) (empty array))
#      2) "v2"
dyn_ctx() { head -n1 <<<"$1" | sed -E 's/^1\) "(.*)"$/\1/'; }
dyn_vals() {
  tail -n +2 <<<"$1" | sed -E 's/^2\) //; s/^ *[0-9]+\) //' | grep -v '^(empty array)$' | sort || true
}
dyn_live() { dyn_vals "$1" | grep -v '^(nil)$' || true; }

if [[ "$TARGET" == "redis" ]]; then
  echo "SKIP: DYN.* checks (DYNKV_TARGET=redis)"
else
  K="${P}dyn"
  out="$(rc DYN.GET "$K")"
  check "DYN.GET missing key -> no values" "" "$(dyn_vals "$out")"
  t 'OK' DYN.PUT "$K" "" v1
  t 'OK' DYN.PUT "$K" "" v2
  out="$(rc DYN.GET "$K")"
  check "DYN.GET after 2 blind DYN.PUTs -> 2 siblings" $'"v1"\n"v2"' "$(dyn_vals "$out")"
  ctx="$(dyn_ctx "$out")"
  if [[ -n "$ctx" && "$ctx" =~ ^[[:print:]]+$ ]]; then pass "DYN.GET context is printable and non-empty ($ctx)"; else fail "DYN.GET context" "non-empty printable token" "$out"; fi
  t_match '^"v[12]"$' GET "$K"
  g1="$(rc GET "$K")"; g2="$(rc GET "$K")"
  check "GET on siblings is deterministic" "$g1" "$g2"
  t 'OK' DYN.PUT "$K" "$ctx" v3
  out="$(rc DYN.GET "$K")"
  check "DYN.GET after DYN.PUT with context -> 1 value" '"v3"' "$(dyn_vals "$out")"
  t '"v3"' GET "$K"
  ctx="$(dyn_ctx "$out")"
  t 'OK' DYN.DEL "$K" "$ctx"
  out="$(rc DYN.GET "$K")"
  check "DYN.GET after DYN.DEL with context -> no live values" "" "$(dyn_live "$out")"
  t '(nil)' GET "$K"
  # plain SET is visible through DYN.GET, and DYN.PUT through GET
  t 'OK' SET "${P}dyn2" plain
  out="$(rc DYN.GET "${P}dyn2")"
  check "DYN.GET sees plain SET" '"plain"' "$(dyn_vals "$out")"
  t_match '^\(error\) ' DYN.PUT "${P}dyn2"
  t_match '^(# )?Dynamo' INFO dynamo
  t_match 'node_name:' INFO dynamo
fi

# --- inline (telnet-style) commands and raw protocol over a socket ---
inline_out="$("$PY" - "$HOST" "$PORT" "${P}inline" <<'PYEOF' 2>&1 || true
import socket, sys, time
host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()

def exchange(send, want, close_expected=False):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(send)
    buf = b""
    deadline = time.time() + 5
    try:
        while time.time() < deadline and (close_expected or len(buf) < len(want)):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        pass
    s.close()
    return buf

cases = [
    # (name, bytes sent, exact bytes expected back)
    ("inline SET/GET 'SET k bar\\r\\nGET k\\r\\n'",
     b"SET " + key + b" bar\r\nGET " + key + b"\r\n", b"+OK\r\n$3\r\nbar\r\n"),
    ("inline with \\n line endings",
     b"PING\nGET " + key + b"\n", b"+PONG\r\n$3\r\nbar\r\n"),
    ("inline empty lines are ignored",
     b"\r\n\r\nPING\r\n", b"+PONG\r\n"),
    ("inline quoted argument",
     b'SET ' + key + b'q "hello world"\r\nGET ' + key + b'q\r\n', b"+OK\r\n$11\r\nhello world\r\n"),
    ("inline and RESP mixed on one connection",
     b"ECHO hi\r\n*2\r\n$4\r\nECHO\r\n$2\r\nyo\r\nPING\r\n", b"$2\r\nhi\r\n$2\r\nyo\r\n+PONG\r\n"),
    ("RESP command split across tiny writes", None, b"$5\r\nsplit\r\n"),
]
fails = 0
for name, send, want in cases:
    if send is None:
        s = socket.create_connection((host, port), timeout=5)
        for b in b"*2\r\n$4\r\nECHO\r\n$5\r\nsplit\r\n":
            s.sendall(bytes([b]))
            time.sleep(0.001)
        got = b""
        while len(got) < len(want):
            c = s.recv(4096)
            if not c:
                break
            got += c
        s.close()
    else:
        got = exchange(send, want)
    if got == want:
        print("PASS: " + name)
    else:
        fails += 1
        print("FAIL: " + name)
        print("      expected: %r" % want)
        print("      got:      %r" % got)
# QUIT: +OK then the server closes the connection
got = exchange(b"QUIT\r\n", b"+OK\r\n", close_expected=True)
if got == b"+OK\r\n":
    print("PASS: QUIT replies +OK and closes")
else:
    fails += 1
    print("FAIL: QUIT replies +OK and closes\n      expected: %r\n      got:      %r" % (b"+OK\r\n", got))
PYEOF
)"
echo "$inline_out"
PASS=$((PASS + $(grep -c '^PASS:' <<<"$inline_out" || true)))
inline_fails=$(grep -c '^FAIL:' <<<"$inline_out" || true)
FAIL=$((FAIL + inline_fails))
grep -qE '^(PASS|FAIL): QUIT' <<<"$inline_out" || fail "raw socket checks ran to completion" "7 PASS/FAIL lines" "$inline_out"

# --- mass insert with redis-cli --pipe ---
echo "== mass insert of $MASS_N keys with redis-cli --pipe"
MP="${P}mass:"
pipe_out="$("$PY" - "$MP" "$MASS_N" <<'PYEOF' | redis-cli -h "$HOST" -p "$PORT" --pipe 2>&1 || true
import sys
prefix, n = sys.argv[1].encode(), int(sys.argv[2])
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)
buf = []
for i in range(n):
    buf.append(cmd(b"SET", prefix + str(i).encode(), b"value-%d-%d" % (i, i * 7 % 1000)))
    if len(buf) >= 10000:
        out.write(b"".join(buf)); buf = []
out.write(b"".join(buf))
out.flush()
PYEOF
)"
echo "$pipe_out" | sed 's/^/      /'
if grep -q "errors: 0, replies: $MASS_N\$" <<<"$pipe_out"; then
  pass "redis-cli --pipe summary 'errors: 0, replies: $MASS_N'"
else
  fail "redis-cli --pipe summary" "errors: 0, replies: $MASS_N" "$(tail -n1 <<<"$pipe_out")"
fi
dbsize="$(redis-cli -h "$HOST" -p "$PORT" --raw DBSIZE 2>&1 || true)"
if [[ "$dbsize" =~ ^[0-9]+$ ]] && (( dbsize >= MASS_N )); then
  pass "DBSIZE $dbsize >= $MASS_N"
else
  fail "DBSIZE >= $MASS_N" ">= $MASS_N" "$dbsize"
fi
# sample ~100 keys (always including first and last) through one redis-cli stdin session
mapfile -t idx < <("$PY" -c "import random,sys; n=int(sys.argv[1]); s=sorted(set([0,n-1]+random.sample(range(n),min(n,98)))); print('\n'.join(map(str,s)))" "$MASS_N")
expected=""; cmds=""
for i in "${idx[@]}"; do
  expected+="value-$i-$((i * 7 % 1000))"$'\n'
  cmds+="GET ${MP}$i"$'\n'
done
got="$(printf '%s' "$cmds" | redis-cli -h "$HOST" -p "$PORT" --raw 2>&1 || true)"
if [[ "$got"$'\n' == "$expected" ]]; then
  pass "GET of ${#idx[@]} sampled mass-inserted keys"
else
  fail "GET of ${#idx[@]} sampled mass-inserted keys" "$(head -c 300 <<<"$expected")..." \
       "$(diff <(printf '%s' "$expected") <(printf '%s\n' "$got") | head -n 10)"
fi

echo "== redis-cli session: $PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
