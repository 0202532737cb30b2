# shellcheck shell=bash
# scripts/lib.sh — helpers shared by scripts/run.sh and scripts/test.sh. Source it; don't run it.
#
#   sbx_install_deps   install the Debian packages the build and the tests need (idempotent;
#                      returns at once when every package is already installed)
#   sbx_build DIR [meson setup options...]
#                      configure DIR once (meson setup) and build it (ninja)
#   sbx_log MSG...     print a progress line on stderr
#   sbx_install_s3rver install the S3 test server's npm packages (tests/s3) when missing

SBX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SBX_ROOT

# Everything the build (meson.build), the daemon's run-time and the test suites need.
SBX_PACKAGES=(
    build-essential meson ninja-build pkg-config
    libwebsockets-dev libcurl4-openssl-dev libyajl-dev libpq-dev libyaml-dev libssl-dev
    libseccomp-dev zlib1g-dev
    postgresql postgresql-client
    python3 python3-pytest python3-pytest-timeout python3-requests python3-websocket python3-psycopg2 python3-boto3
    python3-yaml python3-kubernetes
    curl ca-certificates procps util-linux iproute2
)

sbx_log() { printf '==> %s\n' "$*" >&2; }

# `npm ci` of tests/s3 (the lock file is committed), only when node_modules is missing.
sbx_install_s3rver() {
    local dir=$SBX_ROOT/tests/s3
    [[ -d $dir/node_modules/@20minutes/s3rver ]] && return 0
    # Debian's nodejs + npm, unless a node with its npm is there already (a NodeSource nodejs
    # conflicts with Debian's npm package, so these two are not in SBX_PACKAGES).
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        local sudo=()
        [[ $(id -u) -ne 0 ]] && sudo=(sudo)
        sbx_log "installing nodejs npm"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends nodejs npm </dev/null >&2 || return 1
    fi
    sbx_log "installing the S3 test server (npm ci --prefix tests/s3)"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
}

sbx_missing_packages() {
    local p status
    for p in "${SBX_PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [[ $status == installed ]] || printf '%s\n' "$p"
    done
}

sbx_install_deps() {
    local missing
    mapfile -t missing < <(sbx_missing_packages)
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    sbx_log "installing ${#missing[@]} package(s): ${missing[*]}"
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null
}

# Jobs for ninja/meson test: all cores, but at least 1.
sbx_jobs() { nproc 2>/dev/null || echo 2; }

sbx_build() {
    local dir=$1; shift
    cd "$SBX_ROOT" || return 1
    if [[ ! -f $dir/build.ninja ]]; then
        sbx_log "configuring $dir"
        rm -rf "$dir"
        meson setup "$dir" "$@" || return 1
    fi
    sbx_log "building $dir"
    ninja -C "$dir" -j "$(sbx_jobs)" || return 1
}

# sbx_pg_dir NAME — where a private Postgres cluster lives: .state/NAME under the checkout, or,
# when the checkout is not reachable by the `postgres` user that pg.sh runs the server as (a
# clone under /root, mode 0700), /var/tmp/sandboxd-<hash of the checkout path>/NAME.
sbx_pg_dir() {
    local name=$1 state=$SBX_ROOT/.state
    mkdir -p "$state"
    if [[ $(id -u) -ne 0 ]] || runuser -u postgres -- test -x "$state" 2>/dev/null; then
        printf '%s\n' "$state/$name"
        return
    fi
    local alt
    alt=/var/tmp/sandboxd-$(printf '%s' "$SBX_ROOT" | sha256sum | cut -c1-12)
    mkdir -p "$alt"
    chmod 711 "$alt"
    sbx_log "$state is not reachable by user postgres; using $alt/$name for the cluster"
    printf '%s\n' "$alt/$name"
}
