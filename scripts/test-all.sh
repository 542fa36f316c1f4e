#!/usr/bin/env bash
# scripts/test-all.sh — THE one command that runs every dynkv test on a fresh
# Debian machine (this is what CI runs through .ci/run).
#
#   1. installs what is missing: redis-server redis-tools python3-venv netcat-openbsd tmux
#      memcached libmemcached-tools libcache-memcached-perl (apt, only if one of
#      their tools, Cache::Memcached or venv support is missing) and a python venv
#      at compat-tests/.venv with redis + pytest + prometheus_client + django +
#      django-redis + limits + rq + pymemcache
#   2. cargo build --release
#   3. cargo test --release --no-fail-fast   (all Rust unit/integration tests;
#                                       every test binary runs even after a failure)
#   4. compat-tests/run.sh             (redis-cli, redis-py and redis-benchmark
#                                       against target/release/dynkv)
#   5. fuzz/ci.sh                      (installs cargo-fuzz if missing, builds the
#                                       fuzz targets, runs each briefly; any crash fails)
# Exits non-zero if anything fails (a failed build stops immediately; otherwise
# every test stage runs and the failures are listed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
START=$SECONDS

log() { echo; echo "======== [$(( SECONDS - START ))s] $*"; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else echo "FAIL: need root (or sudo) to run: $*"; return 1
  fi
}

# ---- 1. system packages
need_apt=0
for tool in redis-cli redis-server redis-benchmark python3 tmux memcached memccapable; do
  command -v "$tool" >/dev/null || need_apt=1
done
perl -MCache::Memcached -e 1 2>/dev/null || need_apt=1
venv_works() { # can python3 create a venv with pip? (Debian needs python3-venv)
  local d rc=1; d="$(mktemp -d)"
  if python3 -m venv "$d/v" >/dev/null 2>&1 && [[ -x "$d/v/bin/pip" ]]; then rc=0; fi
  rm -rf "$d"; return $rc
}
if [[ ! -x "$ROOT/compat-tests/.venv/bin/python" ]] && command -v python3 >/dev/null && ! venv_works; then
  need_apt=1
fi
if [[ $need_apt -eq 1 ]]; then
  log "installing redis-server redis-tools python3-venv netcat-openbsd tmux memcached libmemcached-tools libcache-memcached-perl (apt)"
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends \
    redis-server redis-tools python3 python3-venv netcat-openbsd tmux ca-certificates \
    memcached libmemcached-tools libcache-memcached-perl
fi
for tool in redis-cli redis-server redis-benchmark python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool still missing after install"; exit 1; }
done
command -v cargo >/dev/null || { echo "FAIL: cargo not found; install a Rust toolchain (rustup) supporting edition 2024"; exit 1; }

# ---- python venv for the redis-py suite
VENV="$ROOT/compat-tests/.venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import redis, pytest, prometheus_client, django, django_redis, limits, rq, pymemcache, meta_memcache' 2>/dev/null; then
  log "creating python venv $VENV (redis, pytest, prometheus_client, django, django-redis, limits, rq, pymemcache, meta-memcache)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip redis pytest prometheus_client django django-redis limits 'rq==1.11.1' pymemcache meta-memcache
fi
export VENV

log "toolchain: $(cargo --version); $(rustc --version); $(redis-server --version | cut -d' ' -f1-3); $("$VENV/bin/python" -c 'import redis, sys; print("python", sys.version.split()[0], "redis-py", redis.__version__)')"

# ---- 2. build (a build failure stops everything)
log "cargo build --release"
cargo build --release

# ---- 3, 4, 5: run every test stage even if an earlier one fails, then report
FAILED=()
log "cargo test --release"
if cargo test --release --no-fail-fast; then echo "PASS: cargo test --release"; else echo "FAIL: cargo test --release"; FAILED+=("cargo test --release"); fi

log "compat-tests/run.sh"
if DYNKV_BIN="$ROOT/target/release/dynkv" DYNKV_TARGET=dynkv ./compat-tests/run.sh; then
  echo "PASS: compat-tests/run.sh"
else
  echo "FAIL: compat-tests/run.sh"; FAILED+=("compat-tests/run.sh")
fi

log "fuzz/ci.sh"
if ./fuzz/ci.sh; then echo "PASS: fuzz/ci.sh"; else echo "FAIL: fuzz/ci.sh"; FAILED+=("fuzz/ci.sh"); fi

if [[ ${#FAILED[@]} -gt 0 ]]; then
  log "FAILED: ${FAILED[*]}"
  exit 1
fi
log "ALL TESTS PASSED"
