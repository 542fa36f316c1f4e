#!/usr/bin/env bash
# compat-tests/memcache.sh HOST MC_PORT — memcached clients against dynkv's
# memcached port, or (MC_TARGET=memcached) against a real memcached: the same
# checks must pass on both.
#   1. memccapable -a (libmemcached's protocol conformance checker, ascii mode)
#   2. memccp / memccat / memcrm / memcexist / memctouch on files (a 100 kB
#      binary blob round-trips byte for byte)
#   3. memcstat prints the server's stats
#   4. memcslap: 10 threads set and get 1,000 keys each, no error
#   5. pymemcache (compat-tests/test_memcache.py, PY=venv python)
#   6. Perl Cache::Memcached (compat-tests/memcache_perl.pl)
# Env: PY (python with pymemcache + pytest), DYNKV_PORT (RESP port, dynkv only).
set -euo pipefail
HOST="$1" PORT="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PY:-python3}"
S="--servers=$HOST:$PORT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out="$(memccapable -h "$HOST" -p "$PORT" -a -t 10 2>&1)" || true
echo "$out" | grep -E '\[(pass|FAIL)\]' | tr -s ' ' | paste -sd' ' | fold -w 160
grep -q "All tests passed" <<<"$out" || { echo "$out"; fail "memccapable -a"; }
echo "ok - memccapable -a: every ascii check passed"

head -c 100000 /dev/urandom >"$TMP/blob.bin"
echo "hello" >"$TMP/hello.txt"
(cd "$TMP" && memccp "$S" blob.bin hello.txt) || fail "memccp"
memccat "$S" blob.bin >"$TMP/back.bin" || fail "memccat"
# memccat ends what it prints with a newline of its own
cmp "$TMP/blob.bin" <(head -c 100000 "$TMP/back.bin") || fail "memccat returned other bytes"
memcexist "$S" hello.txt || fail "memcexist on a present key"
memctouch "$S" --expire=3600 hello.txt || fail "memctouch"
memcrm "$S" hello.txt || fail "memcrm"
if memccat "$S" hello.txt >/dev/null 2>&1; then fail "memccat found a removed key"; fi
if memcexist "$S" hello.txt 2>/dev/null; then fail "memcexist found a removed key"; fi
echo "ok - memccp/memccat/memcexist/memctouch/memcrm"

memcstat "$S" >"$TMP/stat.txt" || fail "memcstat"
grep -q "cmd_get" "$TMP/stat.txt" || { cat "$TMP/stat.txt"; fail "memcstat shows no cmd_get"; }
echo "ok - memcstat"

for test in set get; do
  memcslap "$S" --concurrency=10 --execute-number=1000 --test="$test" >"$TMP/slap.txt" 2>&1 \
    || { cat "$TMP/slap.txt"; fail "memcslap --test=$test"; }
  if grep -qiE "error|fail" "$TMP/slap.txt"; then cat "$TMP/slap.txt"; fail "memcslap --test=$test reported errors"; fi
  grep -E "Time to (set|read)" "$TMP/slap.txt" | tr -s ' '
done
echo "ok - memcslap set and get"

MC_HOST="$HOST" MC_PORT="$PORT" "$PY" -m pytest -q -p no:cacheprovider "$HERE/test_memcache.py" \
  || fail "pymemcache suite"
echo "ok - pymemcache"

perl "$HERE/memcache_perl.pl" "$HOST" "$PORT" >"$TMP/perl.txt" || { cat "$TMP/perl.txt"; fail "Cache::Memcached"; }
echo "ok - Perl Cache::Memcached ($(grep -c '^ok' "$TMP/perl.txt") checks)"
