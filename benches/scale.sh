#!/usr/bin/env bash
# benches/scale.sh — does a write's cost depend on the size of the collection
# it goes into?  redis-server, one dynkv node and node 1 of a 3-node dynkv
# cluster (N=3 R=2 W=2) side by side in one run.
#
# For each of HSET, SADD and ZADD and each size in SIZES (default "10 1000000"):
#   - builds the collection (redis-cli --pipe, BATCH elements per command);
#   - times OPS single-element writes of new elements into it with
#     redis-benchmark -c 1 (so ops/s is 1 / time per op);
#   - on the cluster, the node-to-node bytes per op: dynkv_rpc_bytes_sent_total
#     summed over the 3 nodes' /metrics, before and after the timed ops.
# Then DEL of the largest set, timed the same way (one DEL, -c 1).
# Prints a markdown table and writes it to $OUT (default benches/results-scale.md):
# per-op time for each size, the ratio largest/smallest (goal <= 2), bytes per op.
#
# Env:
#   SIZES="10 1000000"   collection sizes (smallest first)
#   OPS=200              timed writes per (type, size, system)
#   BATCH=10000          elements per command while building
#   SYSTEMS="redis single cluster"
#   DYNKV_BIN=path       dynkv binary (default target/release/dynkv, built if missing)
#   OUT=path             where to write the table
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/lib.sh"
SIZES="${SIZES:-10 1000000}"
OPS="${OPS:-200}"
BATCH="${BATCH:-10000}"
SYSTEMS="${SYSTEMS:-redis single cluster}"
OUT="${OUT:-$ROOT/benches/results-scale.md}"
HOST=127.0.0.1
for tool in redis-server redis-benchmark redis-cli python3 curl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found"; exit 2; }
done
DYNKV_BIN="${DYNKV_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/dynkv}"
if [[ ! -x "$DYNKV_BIN" ]]; then
  (cd "$ROOT" && cargo build --release)
fi

read -r -a P < <(free_ports 13)
WORK="$(mktemp -d -t dynkv-scale.XXXXXX)"
PIDS=()
cleanup() {
  local rc=$?
  stop_pids "${PIDS[@]}"
  if [[ $rc -ne 0 ]]; then echo "== logs kept in $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A PORT
SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
CMETRICS=()
for sys in $SYSTEMS; do
  case $sys in
    redis)
      mkdir -p "$WORK/redis"
      redis-server --port "${P[0]}" --bind "$HOST" --dir "$WORK/redis" --save '' \
        --appendonly yes --appendfsync everysec >"$WORK/redis.log" 2>&1 &
      PIDS+=($!); wait_ping "${P[0]}" $! redis-server; PORT[redis]=${P[0]} ;;
    single)
      mkdir -p "$WORK/single"
      "$DYNKV_BIN" --bind "$HOST" --port "${P[1]}" --cluster-port "${P[2]}" --metrics-port "${P[3]}" \
        --data-dir "$WORK/single" --fsync everysec >"$WORK/single.log" 2>&1 &
      PIDS+=($!); wait_ping "${P[1]}" $! "dynkv single"; PORT[single]=${P[1]} ;;
    cluster)
      for i in 0 1 2; do
        join=(); [[ $i -gt 0 ]] && join=(--join "$HOST:${P[7]}")
        mkdir -p "$WORK/c$i"
        "$DYNKV_BIN" --bind "$HOST" --port "${P[$((4 + i))]}" --cluster-port "${P[$((7 + i))]}" \
          --metrics-port "${P[$((10 + i))]}" --data-dir "$WORK/c$i" --node-name "c$i" \
          --n 3 --r 2 --w 2 --fsync everysec --cluster-secret "$SECRET" "${join[@]}" >"$WORK/c$i.log" 2>&1 &
        PIDS+=($!); wait_ping "${P[$((4 + i))]}" $! "cluster node $((i + 1))"
        CMETRICS+=("${P[$((10 + i))]}")
      done
      for _ in $(seq 300); do
        ups="$(redis-cli -h "$HOST" -p "${P[4]}" DYN.MEMBERS 2>/dev/null | grep -cx up || true)"
        [[ "$ups" == 3 ]] && break
        sleep 0.2
      done
      [[ "$ups" == 3 ]] || { echo "FAIL: the cluster did not form"; exit 1; }
      PORT[cluster]=${P[4]} ;;
    *) echo "FAIL: unknown system $sys"; exit 2 ;;
  esac
done

# Sum of dynkv_rpc_bytes_sent_total over the cluster's nodes.
cluster_bytes() {
  local total=0 m v
  for m in "${CMETRICS[@]}"; do
    v="$(curl -fsS "http://$HOST:$m/metrics" | awk '/^dynkv_rpc_bytes_sent_total/ {s += $2} END {printf "%d", s}')"
    total=$((total + v))
  done
  echo "$total"
}

# build TYPE KEY SIZE PORT: SIZE elements, BATCH per command, through --pipe.
build() {
  python3 - "$1" "$2" "$3" "$BATCH" <<'PY' | redis-cli -h 127.0.0.1 -p "$4" --pipe >/dev/null
import sys
kind, key, size, batch = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), int(sys.argv[4])
out = sys.stdout.buffer
def send(args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
for start in range(0, size, batch):
    ids = range(start, min(size, start + batch))
    if kind == "hset":
        args = [b"HSET", key] + [x for i in ids for x in (b"field:%d" % i, b"value")]
    elif kind == "sadd":
        args = [b"SADD", key] + [b"member:%d" % i for i in ids]
    else:
        args = [b"ZADD", key] + [x for i in ids for x in (b"%d" % i, b"member:%d" % i)]
    send(args)
PY
}

# timed PORT ARGS...: avg latency in ms of OPS runs of ARGS, one client.
timed() {
  local port="$1" n="$2"; shift 2
  timeout 3600 redis-benchmark -h "$HOST" -p "$port" -c 1 -n "$n" -r 100000000 --csv "$@" 2>/dev/null \
    | awk -F'","' 'NR > 1 {gsub(/"/, "", $3); print $3}' | tail -n1
}

declare -A MS BYTES
read -r -a SIZE_LIST <<<"$SIZES"
for sys in $SYSTEMS; do
  port=${PORT[$sys]}
  for kind in hset sadd zadd; do
    for size in "${SIZE_LIST[@]}"; do
      key="scale:$kind:$size"
      started=$(date +%s)
      build "$kind" "$key" "$size" "$port"
      card=
      case $kind in hset) card="$(redis-cli -h "$HOST" -p "$port" HLEN "$key")" ;;
                    sadd) card="$(redis-cli -h "$HOST" -p "$port" SCARD "$key")" ;;
                    zadd) card="$(redis-cli -h "$HOST" -p "$port" ZCARD "$key")" ;; esac
      [[ "$card" == "$size" ]] || { echo "FAIL: $sys $key holds $card elements, not $size"; exit 1; }
      echo "-- $sys: built $key ($size elements) in $(( $(date +%s) - started )) s" >&2
      [[ $sys == cluster ]] && before="$(cluster_bytes)"
      case $kind in
        hset) ms="$(timed "$port" "$OPS" HSET "$key" new:__rand_int__ v)" ;;
        sadd) ms="$(timed "$port" "$OPS" SADD "$key" new:__rand_int__)" ;;
        zadd) ms="$(timed "$port" "$OPS" ZADD "$key" __rand_int__ new:__rand_int__)" ;;
      esac
      [[ -n "$ms" ]] || { echo "FAIL: no result for $sys $kind into $size"; exit 1; }
      MS[$sys:$kind:$size]="$ms"
      if [[ $sys == cluster ]]; then
        BYTES[$kind:$size]=$(( ($(cluster_bytes) - before) / OPS ))
      fi
      echo "-- $sys: ${kind^^} into $size elements: $ms ms/op" >&2
    done
  done
  big="${SIZE_LIST[-1]}"
  MS[$sys:del]="$(timed "$port" 1 DEL "scale:sadd:$big")"
  [[ "$(redis-cli -h "$HOST" -p "$port" EXISTS "scale:sadd:$big")" == 0 ]] \
    || { echo "FAIL: $sys: the set survived DEL"; exit 1; }
  echo "-- $sys: DEL of the $big-member set: ${MS[$sys:del]} ms" >&2
done

small="${SIZE_LIST[0]}"; big="${SIZE_LIST[-1]}"
{
  echo "Per-op time (ms, one client) writing one new element into a collection of $small and of $big elements; ratio = $big / $small (goal <= 2)."
  echo "Cluster bytes/op: node-to-node RPC bytes (dynkv_rpc_bytes_sent_total over 3 nodes) per write (goal: independent of size)."
  echo
  header="| op |"; sep="|---|"
  for sys in $SYSTEMS; do header+=" $sys $small | $sys $big | $sys ratio |"; sep+="---|---|---|"; done
  [[ " $SYSTEMS " == *" cluster "* ]] && { header+=" cluster bytes/op $small | cluster bytes/op $big |"; sep+="---|---|"; }
  echo "$header"; echo "$sep"
  for kind in hset sadd zadd; do
    row="| ${kind^^} |"
    for sys in $SYSTEMS; do
      a=${MS[$sys:$kind:$small]}; b=${MS[$sys:$kind:$big]}
      row+=" $a | $b | $(python3 -c "print(f'{$b / max($a, 1e-9):.1f}')") |"
    done
    [[ " $SYSTEMS " == *" cluster "* ]] && row+=" ${BYTES[$kind:$small]} | ${BYTES[$kind:$big]} |"
    echo "$row"
  done
  echo
  row="DEL of the $big-member set (ms):"
  for sys in $SYSTEMS; do row+=" $sys ${MS[$sys:del]};"; done
  echo "$row"
} | tee "$OUT"
