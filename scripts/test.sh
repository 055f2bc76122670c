#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian/Ubuntu machine: installs what the tests need
# (a venv with selfbox[dev], the Docker engine, Docker Compose v2, the images), then pytest.
#
#   scripts/test.sh [pytest args...]
#
# SELFBOX_TRUST_HOST_CA=1 lets image builds trust this host's CA bundle (TLS proxies).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$REPO_ROOT"

ensure_venv dev
bash scripts/ensure-docker.sh
PYTHON="$VENV/bin/python" bash scripts/install-compose.sh
build_images runtime
log "running the test suite"
exec "$VENV/bin/python" -m pytest "$@"
