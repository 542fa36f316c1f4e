#!/usr/bin/env bash
# compat-tests/tls.sh — TLS on the client port with real clients.
#
# Makes a throw-away CA plus server and client certificates with the openssl
# CLI, then starts two servers, each with plain --port alongside --tls-port:
#   1. --tls-auth-clients yes: redis-cli --tls and redis-py ssl=True with a
#      client certificate run PING/SET/GET and see themselves in CLIENT LIST /
#      INFO; the same clients without a certificate are refused; plain RESP
#      on the TLS port gets no reply and the server keeps serving
#   2. --tls-auth-clients no: redis-cli --tls and redis-py without a client
#      certificate are served
# The flags are Redis's, so DYNKV_TARGET=redis runs the same checks against
# redis-server (built with TLS) to validate them.
#
# Env: DYNKV_BIN (dynkv binary, required unless DYNKV_TARGET=redis),
#      DYNKV_TARGET=dynkv|redis, PY (python with redis-py; default python3),
#      TLS_DEBUG=1 (print every reply checked).
# Prints one PASS/FAIL line per check; exits 1 if any check failed.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
. "$ROOT/scripts/lib.sh"
TARGET="${DYNKV_TARGET:-dynkv}"
PY="${PY:-python3}"
HOST=127.0.0.1

for tool in openssl redis-cli; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found"; exit 2; }
done
[[ "$(redis-cli --help 2>&1 || true)" == *--tls* ]] || { echo "FAIL: this redis-cli has no --tls"; exit 2; }
[[ "$TARGET" == "redis" || -x "${DYNKV_BIN:-}" ]] || { echo "FAIL: set DYNKV_BIN"; exit 2; }

WORK="$(mktemp -d -t dynkv-tls.XXXXXX)"
PIDS=()
cleanup() {
  local rc=$?
  stop_pids "${PIDS[@]}"
  if [[ $rc -ne 0 ]]; then
    for p in "$WORK"/*.log; do [[ -f "$p" ]] && { echo "== last 20 lines of $p:"; tail -n 20 "$p"; }; done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

# --- a test CA, a server certificate for 127.0.0.1/localhost, a client one
P="$WORK/pki"; mkdir -p "$P"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$P/ca.key" -out "$P/ca.crt" -days 2 \
  -subj "/CN=dynkv test CA" 2>/dev/null
sign() { # sign NAME EXTENSIONS
  openssl req -new "${ec[@]}" -keyout "$P/$1.key" -out "$P/$1.csr" -subj "/CN=dynkv test $1" 2>/dev/null
  printf '%s\n' "$2" >"$P/$1.ext"
  openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
    -days 2 -extfile "$P/$1.ext" -out "$P/$1.crt" 2>/dev/null
}
sign server $'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'
sign client 'extendedKeyUsage=clientAuth'

# start NAME AUTH_CLIENTS: sets PORT and TLS_PORT
start() {
  local name="$1" auth="$2" cport mport
  read -r PORT TLS_PORT cport mport < <(free_ports 4)
  local tls=(--tls-port "$TLS_PORT" --tls-cert-file "$P/server.crt" --tls-key-file "$P/server.key"
             --tls-ca-cert-file "$P/ca.crt" --tls-auth-clients "$auth")
  mkdir -p "$WORK/$name"
  if [[ "$TARGET" == "redis" ]]; then
    redis-server --port "$PORT" --bind "$HOST" --save '' --appendonly no --dir "$WORK/$name" \
      "${tls[@]}" >"$WORK/$name.log" 2>&1 &
  else
    "$DYNKV_BIN" --bind "$HOST" --port "$PORT" --cluster-port "$cport" --metrics-port "$mport" \
      --data-dir "$WORK/$name" --node-name "$name" "${tls[@]}" >"$WORK/$name.log" 2>&1 &
  fi
  PIDS+=($!)
  for _ in $(seq 100); do
    [[ "$(redis-cli -h "$HOST" -p "$PORT" PING 2>&1)" == PONG ]] && return 0
    sleep 0.2
  done
  echo "FAIL: server $name did not start"; return 1
}

FAIL=0
expect() { # NAME REGEX GOT
  [[ -n "${TLS_DEBUG:-}" ]] && echo "   [$SECONDS s] got: ${3:0:100}"
  if [[ "$3" =~ $2 ]]; then echo "PASS: $1"; else
    echo "FAIL: $1"; echo "      expected: /$2/"; echo "      got:      $3"; FAIL=1; fi
}
CA=(--tls --cacert "$P/ca.crt")
CERT=(--cert "$P/client.crt" --key "$P/client.key")
tcli() { timeout 10 redis-cli -h "$HOST" -p "$TLS_PORT" "$@" 2>&1 || true; }
# py CERT(yes|no) -> "PONG v" on success, the exception's class otherwise
py() {
  timeout 20 "$PY" - "$HOST" "$TLS_PORT" "$P" "$1" <<'PYEOF' 2>&1 || true
import sys, redis
from redis.backoff import NoBackoff
from redis.retry import Retry
host, port, pki, cert = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "yes"
# No retries: a refusal should show at once, not after redis-py's backoff.
kw = dict(ssl=True, ssl_ca_certs=pki + "/ca.crt", socket_timeout=5, decode_responses=True,
          retry=Retry(NoBackoff(), 0))
if cert:
    kw.update(ssl_certfile=pki + "/client.crt", ssl_keyfile=pki + "/client.key")
try:
    c = redis.Redis(host=host, port=port, **kw)
    c.ping()
    c.set("tls:py", "from redis-py")
    print("PONG", c.get("tls:py"))
except Exception as e:
    print(type(e).__name__)
PYEOF
}

echo "== TLS against $TARGET (CA and certificates made with $(openssl version | cut -d' ' -f1-2))"
start tls-auth yes
expect "redis-cli --tls with client cert: PING" '^PONG$' "$(tcli "${CA[@]}" "${CERT[@]}" PING)"
expect "redis-cli --tls: SET then GET" $'^OK\nover tls$' \
  "$(printf 'SET tls:k "over tls"\nGET tls:k\n' | tcli "${CA[@]}" "${CERT[@]}")"
expect "plain port sees the value set over TLS" '^over tls$' "$(redis-cli -h "$HOST" -p "$PORT" GET tls:k 2>&1)"
expect "CLIENT LIST over TLS lists the TLS connection" "laddr=$HOST:$TLS_PORT" \
  "$(tcli "${CA[@]}" "${CERT[@]}" CLIENT LIST)"
expect "INFO over TLS counts the TLS client" 'connected_clients:[1-9]' \
  "$(tcli "${CA[@]}" "${CERT[@]}" INFO clients)"
expect "CONFIG GET tls-port" $'^tls-port\n'"$TLS_PORT"'$' \
  "$(tcli "${CA[@]}" "${CERT[@]}" CONFIG GET tls-port)"
expect "CONFIG GET tls-auth-clients" $'^tls-auth-clients\nyes$' \
  "$(tcli "${CA[@]}" "${CERT[@]}" CONFIG GET tls-auth-clients)"
got="$(tcli "${CA[@]}" PING)"
expect "redis-cli --tls without client cert is refused" '^(.*[Ee]rror|.*refused|.*reset|.*closed|.*certificate).*' "$got"
[[ "$got" != *PONG* ]] || { echo "FAIL: client without cert got PONG"; FAIL=1; }
expect "redis-py ssl=True with client cert" '^PONG from redis-py$' "$(py yes)"
expect "redis-py ssl=True without client cert is refused" '^[A-Za-z]*Error$' "$(py no)"
got="$(timeout 10 redis-cli -h "$HOST" -p "$TLS_PORT" PING 2>&1 || true)"
[[ "$got" != *PONG* ]] && echo "PASS: plain redis-cli on the TLS port gets no reply" \
  || { echo "FAIL: plain redis-cli on the TLS port got $got"; FAIL=1; }
expect "server still serves TLS afterwards" '^PONG$' "$(tcli "${CA[@]}" "${CERT[@]}" PING)"
expect "server still serves plain afterwards" '^PONG$' "$(redis-cli -h "$HOST" -p "$PORT" PING 2>&1)"

start tls-noauth no
expect "auth-clients no: redis-cli --tls without client cert" '^PONG$' "$(tcli "${CA[@]}" PING)"
expect "auth-clients no: redis-py ssl=True without client cert" '^PONG from redis-py$' "$(py no)"

exit $FAIL
