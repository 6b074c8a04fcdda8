#!/usr/bin/env bash
# Build, without any container registry, a local base image equivalent to the
# official python:3.11-slim-bookworm image: Debian bookworm (debootstrap,
# minbase) + Debian's Python 3.11 + a virtual environment at /opt/venv that is
# first on PATH. Air-gapped machines and clusters need exactly this.
#
#   scripts/build-base-image.sh [IMAGE]     default IMAGE: multiverse/python:3.11-slim-bookworm
#
# Idempotent: does nothing when IMAGE already exists (FORCE=1 rebuilds).
# Needs root (debootstrap) and a Debian mirror reachable by apt on the host;
# the mirror is debootstrap's default unless DEBIAN_MIRROR is set.
set -euo pipefail

IMAGE=${1:-multiverse/python:3.11-slim-bookworm}
ROOTFS_IMAGE=multiverse/debian:bookworm-minbase
SUITE=bookworm
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base image: $IMAGE already present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: building the offline base image needs root (debootstrap). Rerun as root," >&2
    echo "       or pull the official image instead: docker pull python:3.11-slim-bookworm" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "base image: installing debootstrap"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# A docker client that builds with BuildKit: one with the buildx plugin, or one
# older than 23 (Debian's docker.io) where BuildKit is built in.
buildkit_client() {
    local d major
    for d in $(type -ap docker); do
        if "$d" buildx version >/dev/null 2>&1; then echo "$d"; return 0; fi
        major=$("$d" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)
        if [ -n "$major" ] && [ "$major" -lt 23 ] 2>/dev/null; then echo "$d"; return 0; fi
    done
    echo "error: no docker client on PATH can build with BuildKit (install the buildx plugin)" >&2
    return 1
}
docker_bk=$(buildkit_client)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

echo "base image: debootstrap $SUITE (minbase) ..."
# shellcheck disable=SC2086
debootstrap --variant=minbase "$SUITE" "$rootfs" ${DEBIAN_MIRROR:-} >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# debootstrap writes only the main suite; add -updates and -security from the
# same mirror it used, as the official images do.
mirror=$(awk '$1 == "deb" {print $2; exit}' "$rootfs/etc/apt/sources.list")
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb ${mirror%/}-security $SUITE-security main
SOURCES

# Slim like the official slim images: no docs, man pages or translations.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
SLIM
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/cache/apt/*.bin \
       "$rootfs"/var/cache/apt/archives/*.deb \
       "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true

echo "base image: importing root file system as $ROOTFS_IMAGE"
tar -C "$rootfs" -c . | docker import - "$ROOTFS_IMAGE" >/dev/null

echo "base image: adding Python 3.11 and /opt/venv -> $IMAGE"
DOCKER_BUILDKIT=1 "$docker_bk" build --build-arg "ROOTFS_IMAGE=$ROOTFS_IMAGE" \
    -f "$here/docker/base.Dockerfile" -t "$IMAGE" "$here/docker" >"$work/build.log" 2>&1 || {
    tail -n 30 "$work/build.log" >&2; exit 1; }
docker image inspect "$IMAGE" --format 'base image: {{index .RepoTags 0}} ({{.Size}} bytes)'
