#!/usr/bin/env bash
# Prepare this checkout for `docker compose up -d` on a fresh Debian/Ubuntu host.
#
#   scripts/compose-setup.sh          (idempotent; then: docker compose up -d)
#
# - the Docker engine and Docker Compose v2 (scripts/ensure-docker.sh, install-compose.sh);
# - .env from .env.example with a freshly generated API key, when there is no .env yet;
# - the base image: the official one, or a local one built from Debian packages when no registry
#   answers (scripts/build-local-base.sh), written to .env as SELFBOX_BASE_IMAGE;
# - a TLS-intercepting proxy (detected: a handshake to the package index the base image rejects
#   and this host accepts): the host's CA bundle goes into images/{runtime,server}/certs/ and
#   SELFBOX_TRUST_HOST_CA=1 into .env, so pip in the builds trusts it. Never turns off
#   verification. Values already in .env (or the environment) are kept as overrides.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '[compose-setup] %s\n' "$*" >&2; }

bash scripts/ensure-docker.sh
bash scripts/install-compose.sh

if [ ! -e .env ]; then
    key="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    sed "s/^SELFBOX_API_KEYS=.*/SELFBOX_API_KEYS=$key/" .env.example > .env
    chmod 600 .env
    log "wrote .env with a new API key (SELFBOX_API_KEYS)"
fi

env_value() {  # $1: name; the last value .env gives it, if any
    sed -n "s/^$1=//p" .env | tail -n 1
}
set_env() {  # $1: name, $2: value; replaces the setting in .env, or appends it
    if grep -q "^$1=" .env; then
        sed -i "s|^$1=.*|$1=$2|" .env
    else
        printf '%s=%s\n' "$1" "$2" >> .env
    fi
}

# What .env already says is an override, like the environment.
for name in SELFBOX_BASE_IMAGE SELFBOX_TRUST_HOST_CA; do
    if [ -z "${!name:-}" ] && [ -n "$(env_value "$name")" ]; then
        export "$name=$(env_value "$name")"
    fi
done
plan="$(python3 sandbox_server/buildhost.py plan)"
base="$(sed -n 's/^SELFBOX_BASE_IMAGE=//p' <<<"$plan")"
trust="$(sed -n 's/^SELFBOX_TRUST_HOST_CA=//p' <<<"$plan")"
bundle="$(sed -n 's/^HOST_CA_BUNDLE=//p' <<<"$plan")"
set_env SELFBOX_BASE_IMAGE "$base"
set_env SELFBOX_TRUST_HOST_CA "$trust"
if [ "$trust" = "1" ]; then
    for image in runtime server; do
        cp "$bundle" "images/$image/certs/host-ca.crt"
    done
fi
log "ready: SELFBOX_BASE_IMAGE=$base SELFBOX_TRUST_HOST_CA=$trust in .env; now: docker compose up -d"
