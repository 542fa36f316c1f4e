#!/usr/bin/env bash
# Chaos run against the compose cluster (docker/compose.yml), bounded in
# time and requests, torn down at the end:
#
#   baseline   3 nodes up; a bounded writer + reader; every write read back
#   partition  `docker network disconnect` one node under load, reconnect
#              it (same IP), then every acknowledged write read back
#              through every node: 0 nil reads, 0 lost writes
#   scale-out  nodes n4, n5 join (--join n1:16379) under load; 5 up; every
#              write read back through every node
#   scale-in   DYN.LEAVE on n5 then n4 under load; each must exit 0 after
#              handing its data off; 3 left; every write read back
#
#   docker/chaos.sh                      # all phases
#   docker/chaos.sh partition            # only some (baseline always runs)
#   CHAOS_WRITES=5000 docker/chaos.sh    # bigger
#
# Environment: CHAOS_WRITES (writes per phase, 3000), CHAOS_RATE (writes/s,
# 200), CHAOS_PARTITION_SECS (8), CHAOS_PARTITION_NODE (n3), CHAOS_KEEP=1
# (leave the cluster up), CHAOS_OUT (directory for ledger, summaries and
# node logs), CHAOS_VENV (venv for redis-py), DYNKV_NET (/24 prefix,
# default 172.31.241 so a cluster from compose.yml on 172.31.240 is not
# disturbed), DYNKV_IMAGE. The image is built with build-image.sh when
# missing (DYNKV_BIN: a binary to put in it).
#
# Exit status 0 only when every phase run passed; the verdict lines say
# which did not, and why.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project=${DYNKV_CHAOS_PROJECT:-dynkvchaos}
export DYNKV_NET=${DYNKV_NET:-172.31.241}
export DYNKV_IMAGE=${DYNKV_IMAGE:-dynkv:latest}
# A loaded Docker daemon can take over compose's default 60 s per request.
export COMPOSE_HTTP_TIMEOUT=${COMPOSE_HTTP_TIMEOUT:-300}
export DYNKV_PASSWORD=${DYNKV_PASSWORD:-chaos-password-$RANDOM$RANDOM}
export DYNKV_CLUSTER_SECRET=${DYNKV_CLUSTER_SECRET:-chaos-secret-$RANDOM$RANDOM$RANDOM}
writes=${CHAOS_WRITES:-3000}
rate=${CHAOS_RATE:-200}
partition_secs=${CHAOS_PARTITION_SECS:-8}
victim=${CHAOS_PARTITION_NODE:-n3}
out=${CHAOS_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/dynkv-chaos.XXXXXX")}
venv=${CHAOS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dynkv-chaos-venv}
ledger="$out/ledger.jsonl"
mkdir -p "$out"
: > "$ledger"

phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(partition scale-out scale-in)
for p in "${phases[@]}"; do
    case "$p" in partition|scale-out|scale-in) ;; *) echo "unknown phase $p" >&2; exit 2 ;; esac
done
wants() { local p; for p in "${phases[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

log() { printf '%s chaos: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

if docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose_cmd=(docker-compose)
else
    die "neither 'docker compose' nor docker-compose is installed"
fi
compose() { "${compose_cmd[@]}" -p "$project" -f "$here/compose.yml" --profile scale "$@"; }
command -v redis-cli >/dev/null || die "redis-cli is needed on the host (apt-get install redis-tools)"

# --- tools ----------------------------------------------------------------
if ! docker image inspect "$DYNKV_IMAGE" >/dev/null 2>&1; then
    log "image $DYNKV_IMAGE missing: building it"
    "$here/build-image.sh" ${DYNKV_BIN:+--binary "$DYNKV_BIN"} --tag "$DYNKV_IMAGE"
fi
python=python3
if ! "$python" -c 'import redis' 2>/dev/null; then
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import redis' 2>/dev/null; then
        log "making a venv with redis-py in $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet redis
    fi
    python="$venv/bin/python"
fi

ip_of() { # node name -> its fixed address (compose.yml)
    echo "$DYNKV_NET.1${1#n}"
}
cli() { # node, command... (bounded: a partitioned node must not hang us)
    local node=$1; shift
    timeout 5 redis-cli -h "$(ip_of "$node")" -p 6379 -a "$DYNKV_PASSWORD" --no-auth-warning "$@"
}
members_up() { # how many members `node` sees up (DYN.MEMBERS: name, addr, status, owned)
    cli "$1" DYN.MEMBERS 2>/dev/null | grep -cx up || true
}
members_total() {
    cli "$1" DYN.MEMBERS 2>/dev/null | grep -cxE 'up|down' || true
}
wait_members() { # want, timeout_s, nodes...: every node sees exactly `want` members, all up
    local want=$1 limit=$2; shift 2
    local deadline=$((SECONDS + limit)) n ok
    while [ $SECONDS -lt $deadline ]; do
        ok=1
        for n in "$@"; do
            [ "$(members_up "$n")" = "$want" ] && [ "$(members_total "$n")" = "$want" ] || { ok=0; break; }
        done
        [ $ok = 1 ] && return 0
        sleep 1
    done
    return 1
}
container() { compose ps -a -q "$1"; }
network() {
    docker network ls -q --filter "label=com.docker.compose.project=$project" \
        --filter "label=com.docker.compose.network=dynkv" | head -n1
}
node_args() { local n; for n in "$@"; do printf -- '--node %s=%s:6379 ' "$n" "$(ip_of "$n")"; done; }
json_field() { # file field
    "$python" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1]).get(sys.argv[2], ""))' "$1" "$2"
}
start_load() { # prefix, nodes... -> runs in the background, summary in $out/load-<prefix>.json
    local prefix=$1; shift
    # shellcheck disable=SC2046
    "$python" "$here/chaos_client.py" load --prefix "$prefix" --count "$writes" --rate "$rate" \
        --read-rate "$rate" --max-seconds $(( writes * 3 / (rate > 0 ? rate : 1) + 60 )) \
        --password "$DYNKV_PASSWORD" --ledger "$ledger" $(node_args "$@") \
        > "$out/load-$prefix.json" 2> "$out/load-$prefix.err" &
    load_pid=$!
}
verify() { # name, nodes... -> summary in $out/verify-<name>.json
    local name=$1; shift
    # shellcheck disable=SC2046
    "$python" "$here/chaos_client.py" verify --password "$DYNKV_PASSWORD" --ledger "$ledger" \
        --tries 5 $(node_args "$@") > "$out/verify-$name.json" 2> "$out/verify-$name.err" || true
}

verdicts=()
failed=0
# judge phase load-prefix verify-name [reason]: PASS iff the load saw no nil
# or wrong read and wrote something, and the read-back found every write.
judge() {
    local phase=$1 lf="$out/load-$2.json" vf="$out/verify-$3.json" reason=${4:-}
    local nil wrong acked failedw retries rerr lost wrongv unread keys
    nil=$(json_field "$lf" nil_reads 2>/dev/null || echo "?")
    wrong=$(json_field "$lf" wrong_reads 2>/dev/null || echo "?")
    acked=$(json_field "$lf" writes_acked 2>/dev/null || echo "?")
    failedw=$(json_field "$lf" writes_failed 2>/dev/null || echo "?")
    retries=$(json_field "$lf" write_retries 2>/dev/null || echo "?")
    rerr=$(json_field "$lf" read_errors 2>/dev/null || echo "?")
    keys=$(json_field "$vf" keys 2>/dev/null || echo "?")
    lost=$(json_field "$vf" lost_writes 2>/dev/null || echo "?")
    wrongv=$(json_field "$vf" wrong_values 2>/dev/null || echo "?")
    unread=$(json_field "$vf" unreadable 2>/dev/null || echo "?")
    local line="acked_writes=$acked failed_writes=$failedw (retried elsewhere: $retries) nil_reads=$nil wrong_reads=$wrong read_errors=$rerr | read back $keys keys: lost_writes=$lost wrong_values=$wrongv unreadable=$unread"
    if [ -z "$reason" ]; then
        if [ "$nil" != 0 ] || [ "$wrong" != 0 ]; then reason="reads during the phase were wrong"
        elif [ "$lost" != 0 ] || [ "$wrongv" != 0 ]; then reason="acknowledged writes lost"
        elif [ "$unread" != 0 ]; then reason="keys unreadable after healing"
        elif [ "$acked" = 0 ] || [ "$acked" = "?" ]; then reason="no write was acknowledged"
        fi
    fi
    if [ -z "$reason" ]; then
        verdicts+=("PASS $phase: $line")
    else
        verdicts+=("FAIL $phase: $reason; $line")
        failed=1
    fi
    log "${verdicts[-1]}"
}

teardown() {
    local rc=$?
    if [ -n "${load_pid:-}" ]; then kill "$load_pid" 2>/dev/null || true; fi
    for n in n1 n2 n3 n4 n5; do
        c=$(container "$n" 2>/dev/null || true)
        [ -n "$c" ] && docker logs "$c" > "$out/$n.log" 2>&1 || true
    done
    if [ "${CHAOS_KEEP:-0}" = 1 ]; then
        log "CHAOS_KEEP=1: cluster left up (project $project)"
    else
        compose down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    log "results, ledger and node logs in $out"
    exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- baseline -------------------------------------------------------------
log "project $project, network $DYNKV_NET.0/24, image $DYNKV_IMAGE, ${writes} writes/phase at ${rate}/s"
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d n1 n2 n3
wait_members 3 180 n1 n2 n3 || die "3 nodes did not see each other up within 180 s"
log "3 members up:"; cli n1 DYN.MEMBERS | paste - - - - >&2
start_load base n1 n2 n3
wait "$load_pid"; load_pid=
verify base n1 n2 n3
judge baseline base base

# --- partition ------------------------------------------------------------
if wants partition; then
    net=$(network); cid=$(container "$victim"); vip=$(ip_of "$victim")
    [ -n "$net" ] && [ -n "$cid" ] || die "cannot find the network or $victim's container"
    others=(); for n in n1 n2 n3; do [ "$n" != "$victim" ] && others+=("$n"); done
    start_load part n1 n2 n3
    sleep 2
    log "partition: disconnecting $victim ($vip) for ${partition_secs}s"
    docker network disconnect "$net" "$cid"
    seen_down=0
    for _ in $(seq "$partition_secs"); do
        sleep 1
        [ "$(members_up "${others[0]}")" = 2 ] && seen_down=1
    done
    log "partition: ${others[0]} saw $victim down: $([ $seen_down = 1 ] && echo yes || echo no)"
    docker network connect --ip "$vip" --alias "$victim" "$net" "$cid"
    log "partition: $victim reconnected"
    wait "$load_pid"; load_pid=
    wait_members 3 60 n1 n2 n3 || log "partition: members not all up 60 s after healing"
    # Hinted handoff delivers what the victim missed; reads must not depend
    # on it (R of N), but give it a moment so read-back also tests it.
    sleep 3
    verify part n1 n2 n3
    reason=
    [ $seen_down = 1 ] || reason="the partition was not seen (no member went down)"
    log "partition: requests per node during the phase: $("$python" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["by_node"])' "$out/load-part.json" 2>/dev/null || echo '?')"
    judge partition part part "$reason"
fi

# --- scale out ------------------------------------------------------------
if wants scale-out || wants scale-in; then
    start_load grow n1 n2 n3
    sleep 2
    log "scale-out: starting n4 and n5 (--join n1:16379)"
    compose up -d n4 n5
    reason=
    wait_members 5 180 n1 n2 n3 n4 n5 || reason="5 members not all up within 180 s"
    wait "$load_pid"; load_pid=
    [ -n "$reason" ] || { log "5 members up:"; cli n1 DYN.MEMBERS | paste - - - - >&2; }
    verify grow n1 n2 n3 n4 n5
    wants scale-out && judge scale-out grow grow "$reason"
fi

# --- scale in -------------------------------------------------------------
if wants scale-in; then
    start_load shrink n1 n2 n3
    sleep 2
    reason=
    left=()
    for n in n5 n4; do
        answer=$(cli "$n" DYN.LEAVE 2>&1 || true)
        log "scale-in: DYN.LEAVE on $n: $answer"
        case "$answer" in
            ERR*|*ERR*|"(error)"*|"") reason="DYN.LEAVE on $n failed: $answer"; break ;;
        esac
        cid=$(container "$n")
        deadline=$((SECONDS + 120))
        while [ $SECONDS -lt $deadline ] && [ "$(docker inspect -f '{{.State.Status}}' "$cid")" = running ]; do
            sleep 1
        done
        status=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$cid")
        if [ "$status" != "exited 0" ]; then
            reason="$n did not exit 0 within 120 s after DYN.LEAVE (state: $status)"
            break
        fi
        left+=("$n")
        log "scale-in: $n left and exited 0"
    done
    wait "$load_pid"; load_pid=
    if [ -z "$reason" ]; then
        wait_members 3 60 n1 n2 n3 || reason="the 3 remaining nodes do not all see exactly 3 members"
        compose rm -f n4 n5 >/dev/null
        verify shrink n1 n2 n3
    else
        # Nothing left: read back through every node still running, so the
        # data is checked even though the membership change was not done.
        running=(n1 n2 n3)
        for n in n4 n5; do
            case " ${left[*]} " in *" $n "*) ;; *) running+=("$n") ;; esac
        done
        verify shrink "${running[@]}"
    fi
    judge scale-in shrink shrink "$reason"
fi

log "verdict:"
for v in "${verdicts[@]}"; do echo "$v"; done
exit $failed
