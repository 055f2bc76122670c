#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.
#
# On a fresh Debian/Ubuntu host (or CI) there may be only the client, or nothing: install
# docker.io and start dockerd in the background. Never assumes an engine; never touches a
# running one except to register gVisor (runsc) when it is installed and not yet known.
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if docker info >/dev/null 2>&1; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    log "no Docker engine found: installing docker.io (and runsc for optional gVisor)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io >/dev/null
    # gVisor is optional: a missing package must not fail the set-up.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq runsc >/dev/null 2>&1 \
        || log "runsc (gVisor) not available: the optional runsc runtime stays off"
fi

# Register runsc as a Docker runtime when present (network is always none for sandboxes).
if command -v runsc >/dev/null 2>&1 && [ ! -s /etc/docker/daemon.json ]; then
    $SUDO mkdir -p /etc/docker
    printf '{\n  "runtimes": {\n    "runsc": {"path": "%s", "runtimeArgs": ["--network=none"]}\n  }\n}\n' \
        "$(command -v runsc)" | $SUDO tee /etc/docker/daemon.json >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd in the background (log: /var/log/selfbox-dockerd.log)"
    $SUDO sh -c 'nohup dockerd >/var/log/selfbox-dockerd.log 2>&1 &'
fi

for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        log "Docker engine is up"
        exit 0
    fi
    sleep 0.5
done
log "the Docker engine did not come up within 30 s; see /var/log/selfbox-dockerd.log"
exit 1
