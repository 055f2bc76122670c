#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian/Ubuntu machine: installs what the tests need
# (a venv with selfbox[dev], then scripts/check.sh: ruff and mypy; the Docker engine, Docker
# Compose v2, Node.js for the E2B JavaScript SDK tests, the images), then pytest.
#
#   scripts/test.sh [pytest args...]
#
# Behind a TLS-intercepting proxy, image builds trust this host's CA bundle (detected;
# SELFBOX_TRUST_HOST_CA=1/0 overrides). No registry: a local base image is built.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$REPO_ROOT"

ensure_venv dev
bash scripts/check.sh  # lint and types first: a failure there stops the run early
bash scripts/ensure-docker.sh
PYTHON="$VENV/bin/python" bash scripts/install-compose.sh
if ! command -v npm >/dev/null 2>&1; then  # for the E2B JavaScript SDK tests
    log "installing Node.js and npm"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null \
        || log "could not install Node.js; the JavaScript SDK tests will say so"
fi
# The egress tests: a fake internet in a network namespace (dnsmasq, openssl, iptables).
if ! command -v dnsmasq >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
    log "installing dnsmasq-base, openssl, iptables (egress tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends dnsmasq-base openssl iptables >/dev/null
fi
build_images runtime egress-gateway server  # server: the swarm tests deploy it
log "running the test suite"
exec "$VENV/bin/python" -m pytest "$@"
