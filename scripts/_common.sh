# Shared by the set-up scripts: a venv with the project, a Docker engine, the images.
# Sourced, not run.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SELFBOX_VENV:-$REPO_ROOT/.venv}"
log() { printf '[selfbox] %s\n' "$*" >&2; }

ensure_venv() {  # $1: the extras to install, e.g. "server" or "dev"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV" 2>/dev/null || {
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$VENV"
        }
    fi
    log "installing selfbox[$1] into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$REPO_ROOT[$1]"
}

# A registry answers (or the image is already here): use the official base. Otherwise build
# the local Debian base. SELFBOX_BASE_IMAGE overrides the choice.
choose_base_image() {
    if [ -n "${SELFBOX_BASE_IMAGE:-}" ]; then
        echo "$SELFBOX_BASE_IMAGE"; return
    fi
    if docker image inspect python:3.11-slim >/dev/null 2>&1 \
        || timeout 30 docker pull -q python:3.11-slim >/dev/null 2>&1; then
        echo "python:3.11-slim"; return
    fi
    log "no registry reachable: building a local base image from Debian packages"
    bash "$REPO_ROOT/scripts/build-local-base.sh" selfbox/base:bookworm >&2
    echo "selfbox/base:bookworm"
}

build_images() {  # $@: image names (runtime, server)
    local base ca_flag=()
    base="$(choose_base_image)"
    # Opt-in: trust this host's CA bundle inside builds (TLS-intercepting proxies).
    if [ "${SELFBOX_TRUST_HOST_CA:-0}" = "1" ]; then ca_flag=(--trust-host-ca); fi
    log "building images ($*) on $base"
    "$VENV/bin/selfbox" images build "$@" --base-image "$base" "${ca_flag[@]}"
}

http_ok() {  # $1: URL; succeeds on a 2xx answer (no curl needed)
    python3 - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)
PY
}
