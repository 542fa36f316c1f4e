#!/usr/bin/env bash
# Builds the dynkv Docker image without any image registry: the image is
# `FROM scratch` plus a root filesystem staged here from the host (the
# binary, the shared libraries `ldd` names, the dynamic loader, an
# unprivileged user, /tmp, and redis-cli for health checks).
#
#   docker/build-image.sh                      # cargo build --release, tag dynkv:latest
#   docker/build-image.sh --binary PATH        # use an existing dynkv binary
#   docker/build-image.sh --base debian:bookworm-slim   # where a registry is reachable
#
# Options: --binary PATH, --base IMAGE (default scratch), --tag TAG
# (default dynkv:latest), --no-redis-cli, --keep-context (prints its path).
# Environment: DYNKV_BIN, BASE, TAG are the same as the options.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
binary=${DYNKV_BIN:-}
base=${BASE:-scratch}
tag=${TAG:-dynkv:latest}
with_redis_cli=1
keep_context=0

die() { echo "build-image: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=${2:?--binary needs a path}; shift 2 ;;
        --base) base=${2:?--base needs an image}; shift 2 ;;
        --tag) tag=${2:?--tag needs a tag}; shift 2 ;;
        --no-redis-cli) with_redis_cli=0; shift ;;
        --keep-context) keep_context=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

command -v docker >/dev/null || die "docker is not installed"

if [ -z "$binary" ]; then
    echo "build-image: cargo build --release (give --binary to reuse one)" >&2
    (cd "$root" && cargo build --release --bin dynkv)
    binary="${CARGO_TARGET_DIR:-$root/target}/release/dynkv"
fi
[ -x "$binary" ] || die "no executable dynkv at $binary"
"$binary" --version >/dev/null || die "$binary does not run on this host"

ctx=$(mktemp -d "${TMPDIR:-/tmp}/dynkv-image.XXXXXX")
cleanup() { if [ "$keep_context" = 1 ]; then echo "build context: $ctx" >&2; else rm -rf "$ctx"; fi; }
trap cleanup EXIT
rootfs="$ctx/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$ctx/data"
cp "$here/Dockerfile" "$ctx/Dockerfile"
cp "$binary" "$rootfs/usr/local/bin/dynkv"
strip "$rootfs/usr/local/bin/dynkv" 2>/dev/null || true

# Copies a file to the same path under rootfs/, following symlinks so the
# image holds the real bytes under the name the loader asks for.
stage() {
    local path=$1
    mkdir -p "$rootfs$(dirname "$path")"
    cp -L "$path" "$rootfs$path"
}

# Every library (and the loader) an executable needs, as `ldd` resolves them
# on this host: "libx.so => /path (addr)" and "/lib64/ld-linux... (addr)".
stage_libs() {
    local exe=$1 lib
    for lib in $(ldd "$exe" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
        [ -e "$rootfs$lib" ] || stage "$lib"
    done
}

if [ "$base" = scratch ]; then
    # On scratch nothing else is there: bring the libraries, a user and the
    # few files glibc reads.
    stage_libs "$binary"
    if [ "$with_redis_cli" = 1 ]; then
        cli=$(command -v redis-cli) || die "redis-cli not found on this host (apt-get install redis-tools), or pass --no-redis-cli"
        cp -L "$cli" "$rootfs/usr/local/bin/redis-cli"
        stage_libs "$cli"
    fi
    mkdir -p "$rootfs/etc" "$rootfs/tmp"
    chmod 1777 "$rootfs/tmp"
    cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/nonexistent
dynkv:x:10001:10001:dynkv:/data:/nonexistent
nobody:x:65534:65534:nobody:/nonexistent:/nonexistent
PASSWD
    cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
dynkv:x:10001:
nogroup:x:65534:
GROUP
    # Docker writes /etc/hosts and /etc/resolv.conf; glibc needs to be told
    # to look at both (service names such as n1 come from Docker's DNS).
    echo 'hosts: files dns' > "$rootfs/etc/nsswitch.conf"
    # dynkv makes no outgoing TLS connections, so no CA bundle is needed;
    # bring the host's when it exists, for tools run inside the image.
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        stage /etc/ssl/certs/ca-certificates.crt
    fi
else
    # An ordinary base image has its own libc and users; only the binary is
    # added (its libraries, glibc's, are in every glibc base). redis-cli is
    # not: choose a base that has it if you keep the compose health check.
    echo "build-image: base $base: adding only the dynkv binary" >&2
fi

chmod -R a+rX "$rootfs"
# The legacy builder needs nothing beyond the engine; BuildKit would work
# too, but may not be installed alongside an older engine.
if docker buildx version >/dev/null 2>&1; then
    builder=()
else
    builder=(env DOCKER_BUILDKIT=0)
fi
"${builder[@]}" docker build --build-arg "BASE=$base" -t "$tag" "$ctx"
echo "build-image: built $tag from $binary ($(du -sh "$rootfs" | cut -f1) staged)" >&2
