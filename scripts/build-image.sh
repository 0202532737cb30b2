#!/usr/bin/env bash
# scripts/build-image.sh — build the container images from Containerfile with Podman (as root).
#
#   scripts/build-image.sh [--force]
#
#   1. installs podman and debootstrap (and runc where crun cannot run) with apt-get when missing;
#   2. makes sure the base images the Containerfile names (docker.io/library/debian:bookworm and
#      :bookworm-slim) are in Podman's store. Present ones (pulled from a registry) are used as
#      they are; otherwise they are made from the Debian mirror this machine uses, the way the
#      official images are made (debuerreotype): `debootstrap --variant=minbase bookworm`, deb822
#      sources for bookworm, -updates and -security, dist-upgraded, the docker-* apt settings,
#      empty apt lists; -slim also drops documentation, man pages and locales (dpkg
#      path-exclude). Both root file systems are cached as tarballs in .state/image/ and
#      imported (`podman import`);
#   3. podman build --network host (the RUN apt-get steps reach the mirror): the default stage
#      as sandboxd:dev, the `sandbox` stage as sandboxd-sandbox:dev (and the builder stage as
#      sandboxd-builder:dev, which keeps the tool-chain layer cached), labelled with the
#      source tree's hash (git write-tree of the working tree). When both already carry the
#      current hash nothing is rebuilt (--force rebuilds; Podman's layer cache still applies).
#      The images a tag named before a rebuild are removed;
#   4. prints "TAG SIZE bytes" for both images.
#
# Knobs: SBX_IMAGE_TAG (sandboxd:dev), SBX_SANDBOX_IMAGE_TAG (sandboxd-sandbox:dev),
# SBX_DEBIAN_MIRROR (default: the first Debian URI of /etc/apt/sources.list*, else
# http://deb.debian.org/debian), SBX_IMAGE_REBASE=1 (make and import the base images again).
# Podman keeps its store in /var/lib/containers (`podman system reset` empties it). Host
# quirks Podman needs settings for are written to .state/image/containers.conf (see
# podman_conf below); use it for podman commands of your own: export CONTAINERS_CONF=...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SBX_ROOT"

tag=${SBX_IMAGE_TAG:-sandboxd:dev}
sandbox_tag=${SBX_SANDBOX_IMAGE_TAG:-sandboxd-sandbox:dev}
cache=$SBX_ROOT/.state/image
label=io.sandboxd.source-tree
force=0
case ${1:-} in
    --force) force=1 ;;
    '') ;;
    *) sed -n '4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

[[ $(id -u) -eq 0 ]] || { echo "build-image.sh: run as root" >&2; exit 1; }

# Hybrid cgroups (v1 controllers plus a cgroup2 mount holding controllers): crun refuses them.
hybrid_cgroups() { [[ -n $(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null) ]]; }

install_tools() {
    local p missing=()
    for p in podman debootstrap; do
        command -v "$p" >/dev/null || missing+=("$p")
    done
    if hybrid_cgroups && ! command -v runc >/dev/null; then missing+=(runc); fi
    ((${#missing[@]} == 0)) && return 0
    sbx_log "installing ${missing[*]}"
    apt-get update -q </dev/null >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null >&2
}

# Podman settings this host needs, in .state/image/containers.conf (exported as CONTAINERS_CONF;
# tests/packaging/test_image.py uses it too), or none:
# - runc instead of crun with hybrid cgroups;
# - without CAP_SYS_RESOURCE the OCI runtime cannot raise a container's RLIMIT_NOFILE/NPROC to
#   Podman's defaults (1048576): use this shell's hard limits. Podman lowers its own RLIMIT_NPROC
#   to 32768 before it starts the runtime, so nproc is at most that.
podman_conf() {
    local conf=$cache/containers.conf capeff nofile nproc
    rm -f "$conf"
    capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
    if ((((0x$capeff >> 24) & 1) == 0)); then
        nofile=$(ulimit -Hn) nproc=$(ulimit -Hu)
        if [[ $nproc == unlimited ]] || ((nproc > 32768)); then nproc=32768; fi
        printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
            "$nofile" "$nofile" "$nproc" "$nproc" >>"$conf"
    fi
    if hybrid_cgroups; then printf '[engine]\nruntime = "runc"\n' >>"$conf"; fi
    if [[ -s $conf ]]; then
        export CONTAINERS_CONF=$conf
        sbx_log "podman settings for this host: $conf"
    fi
}

# The Debian archive URI this machine's apt uses (one-line or deb822 sources).
host_mirror() {
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
              /etc/apt/sources.list.d/*.sources 2>/dev/null \
          | grep -oE '(https?|file)://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# write FILE LINE... — FILE (inside the root file system being made) holds the LINEs.
write() {
    local f=$1
    shift
    printf '%s\n' "$@" >"$f"
}

# in_cache DIR — DIR is under .state/image (never the host's own / or /etc).
in_cache() {
    case $1 in
        "$cache"/?*) return 0 ;;
        *) echo "build-image.sh: refusing to work on $1" >&2; return 1 ;;
    esac
}

# make_rootfs DIR MIRROR — a minbase bookworm like the official debian:bookworm.
make_rootfs() {
    local dir=$1 mirror=${2%/} log=$cache/debootstrap.log
    in_cache "$dir" || return 1
    rm -rf "$dir"
    if ! debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        return 1
    fi
    rm -f "$dir/etc/apt/sources.list"
    write "$dir/etc/apt/sources.list.d/debian.sources" \
        'Types: deb' "URIs: $mirror" 'Suites: bookworm bookworm-updates' 'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' \
        'Types: deb' "URIs: $mirror-security" 'Suites: bookworm-security' 'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
    write "$dir/etc/apt/apt.conf.d/docker-clean" \
        'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";'
    write "$dir/etc/apt/apt.conf.d/docker-gzip-indexes" 'Acquire::GzipIndexes "true";'
    write "$dir/etc/apt/apt.conf.d/docker-no-languages" 'Acquire::Languages "none";'
    write "$dir/etc/apt/apt.conf.d/docker-autoremove-suggests" \
        'Apt::AutoRemove::SuggestsImportant "false";'
    write "$dir/etc/dpkg/dpkg.cfg.d/docker-apt-speedup" force-unsafe-io
    # bookworm-updates and -security on top of the point release, as in the official images
    if ! { chroot "$dir" apt-get update -q &&
           DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get dist-upgrade -y -q; } \
            >>"$log" 2>&1 </dev/null; then
        tail -n 20 "$log" >&2
        return 1
    fi
    # the container engine provides these two
    rm -f "$dir/etc/resolv.conf" "$dir/etc/hostname"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
        "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log "$dir"/var/log/apt/* "$dir"/tmp/*
    mkdir -p "$dir/var/lib/apt/lists/partial"
}

# slim_rootfs DIR — what -slim drops: documentation (but the copyright files), man pages,
# locales; dpkg keeps them out of later installs too.
slim_rootfs() {
    local dir=$1 d
    in_cache "$dir" || return 1
    write "$dir/etc/dpkg/dpkg.cfg.d/docker" \
        'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
        'path-exclude=/usr/share/groff/*' 'path-exclude=/usr/share/info/*' \
        'path-exclude=/usr/share/linda/*' 'path-exclude=/usr/share/lintian/overrides/*' \
        'path-exclude=/usr/share/locale/*' 'path-exclude=/usr/share/man/*'
    find "$dir/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
    find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
    for d in groff info linda lintian/overrides locale man; do
        if [[ -d $dir/usr/share/$d ]]; then find "$dir/usr/share/$d" -mindepth 1 -delete; fi
    done
}

ensure_base() {
    local variant ref dir=$cache/rootfs mirror
    mirror=${SBX_DEBIAN_MIRROR:-$(host_mirror)}
    if [[ ${SBX_IMAGE_REBASE:-0} == 1 ]]; then rm -f "$cache"/debian-*.tar; fi
    if [[ ! -s $cache/debian-bookworm.tar || ! -s $cache/debian-bookworm-slim.tar ]]; then
        sbx_log "debootstrap --variant=minbase bookworm from $mirror"
        make_rootfs "$dir" "$mirror"
        tar --numeric-owner --xattrs -C "$dir" -cf "$cache/debian-bookworm.tar" .
        slim_rootfs "$dir"
        tar --numeric-owner --xattrs -C "$dir" -cf "$cache/debian-bookworm-slim.tar" .
        rm -rf "$dir"
    fi
    for variant in bookworm bookworm-slim; do
        ref=docker.io/library/debian:$variant
        if [[ ${SBX_IMAGE_REBASE:-0} == 1 ]] || ! podman image exists "$ref"; then
            sbx_log "importing $cache/debian-$variant.tar as $ref"
            podman import -q --change 'CMD ["bash"]' "$cache/debian-$variant.tar" "$ref" \
                >/dev/null
        fi
    done
}

# The hash of the working tree as git would commit it (tracked and untracked, not ignored).
source_tree_hash() {
    local idx
    git rev-parse --git-dir >/dev/null 2>&1 || return 0
    idx=$(mktemp)
    cp "$(git rev-parse --path-format=absolute --git-path index)" "$idx" 2>/dev/null || true
    GIT_INDEX_FILE=$idx git add -A . >/dev/null 2>&1 && GIT_INDEX_FILE=$idx git write-tree
    rm -f "$idx"
}

image_label() {
    podman image inspect --format "{{index .Labels \"$label\"}}" "$1" 2>/dev/null || true
}

install_tools
mkdir -p "$cache"
podman_conf
hash=$(source_tree_hash)
if ((!force)) && [[ -n $hash && $(image_label "$tag") == "$hash" \
        && $(image_label "$sandbox_tag") == "$hash" ]]; then
    sbx_log "$tag and $sandbox_tag are up to date (source tree $hash)"
else
    ensure_base
    # The builder stage is tagged too (sandboxd-builder:dev): it keeps the tool-chain layer
    # cached; the images these tags named before are removed once replaced.
    declare -A targets=([builder]="${tag%:*}-builder:${tag##*:}" [runtime]=$tag
                        [sandbox]=$sandbox_tag)
    for target in builder runtime sandbox; do
        t=${targets[$target]}
        old=$(podman image inspect --format '{{.Id}}' "$t" 2>/dev/null || true)
        sbx_log "podman build --target $target -t $t"
        podman build --pull=never --network host -f Containerfile --target "$target" \
            --label "$label=${hash:-unknown}" -t "$t" . >&2
        if [[ -n $old && $old != $(podman image inspect --format '{{.Id}}' "$t") ]]; then
            podman rmi "$old" >/dev/null 2>&1 || true
        fi
    done
fi
for t in "$tag" "$sandbox_tag"; do
    printf '%s %s bytes\n' "$t" "$(podman image inspect --format '{{.Size}}' "$t")"
done
