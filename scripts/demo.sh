#!/usr/bin/env bash
# Bring the selfbox server up on a fresh Debian/Ubuntu machine and run the demo.
# Installs the Docker engine and builds the images when they are missing.
#
#   scripts/demo.sh
#
# The server keeps running afterwards (127.0.0.1:${SELFBOX_PORT:-8000}); stop it with
#   kill "$(cat .selfbox-server.pid)"
# SELFBOX_API_KEYS sets the keys (else one is generated into .selfbox-api-key).
# Behind a TLS-intercepting proxy, image builds trust this host's CA bundle (detected;
# SELFBOX_TRUST_HOST_CA=1/0 overrides). No registry: a local base image is built.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$REPO_ROOT"

ensure_venv server,e2b
bash scripts/ensure-docker.sh
build_images runtime

PORT="${SELFBOX_PORT:-8000}"
if [ -z "${SELFBOX_API_KEYS:-}" ]; then
    [ -s .selfbox-api-key ] || python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > .selfbox-api-key
    SELFBOX_API_KEYS="$(cat .selfbox-api-key)"
fi
export SELFBOX_API_KEYS SELFBOX_PORT="$PORT"

if ! http_ok "http://127.0.0.1:$PORT/healthz"; then
    log "starting the server on 127.0.0.1:$PORT (log: .selfbox-server.log)"
    nohup "$VENV/bin/selfbox" serve > .selfbox-server.log 2>&1 &
    echo $! > .selfbox-server.pid
    for _ in $(seq 1 60); do
        http_ok "http://127.0.0.1:$PORT/healthz" && break
        sleep 0.5
    done
fi
http_ok "http://127.0.0.1:$PORT/readyz" || { log "server not ready:"; tail -20 .selfbox-server.log; exit 1; }

SELFBOX_URL="http://127.0.0.1:$PORT" SELFBOX_API_KEY="${SELFBOX_API_KEYS%%,*}" \
    "$VENV/bin/python" examples/demo.py
log "server still running on http://127.0.0.1:$PORT (API docs: /docs); stop: kill \$(cat .selfbox-server.pid)"
