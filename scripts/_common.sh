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

# `selfbox images build` chooses the base image (the official one, or a local one built from
# Debian packages when no registry answers; SELFBOX_BASE_IMAGE overrides) and detects a
# TLS-intercepting proxy (SELFBOX_TRUST_HOST_CA=1/0 overrides): the demo and the tests build
# the same image.
build_images() {  # $@: image names (runtime, server)
    log "building images ($*)"
    "$VENV/bin/selfbox" images build "$@"
}

http_ok() {  # $1: URL; succeeds on a 2xx answer (no curl needed)
    python3 - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)
PY
}
