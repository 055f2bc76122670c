#!/usr/bin/env bash
# Build a local Python base image from Debian packages, for hosts that cannot pull images.
#
#   scripts/build-local-base.sh [TAG]        (default tag: selfbox/base:bookworm)
#
# debootstrap --variant=minbase a Debian root with python3 (+venv) and CA certificates, then
# `docker import` it. The runtime and server Dockerfiles take it as BASE_IMAGE. Reuses an
# existing image unless SELFBOX_REBUILD_BASE=1.
set -euo pipefail

TAG="${1:-${SELFBOX_LOCAL_BASE:-selfbox/base:bookworm}}"
SUITE="${SELFBOX_BASE_SUITE:-bookworm}"
MIRROR="${SELFBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { printf '[build-local-base] %s\n' "$*" >&2; }

if [ "${SELFBOX_REBUILD_BASE:-0}" != "1" ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG already exists (SELFBOX_REBUILD_BASE=1 to rebuild)"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

ROOT="$(mktemp -d /var/tmp/selfbox-base.XXXXXX)"
trap 'rm -rf "$ROOT"' EXIT
log "debootstrap $SUITE into $ROOT (about a minute)"
debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,tini \
    "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || { tail -20 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"

# Trim what a container never needs; keep apt usable for derived images.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/*
ln -sf /usr/bin/python3 "$ROOT/usr/local/bin/python"

log "docker import -> $TAG"
tar -C "$ROOT" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$TAG" >/dev/null
log "built $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
