#!/usr/bin/env bash
# Lint and types: `ruff check .` and `mypy` (strict; configuration in pyproject.toml), in the
# project's venv (made with selfbox[dev] when missing). CI runs it before the tests.
#
#   scripts/check.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$REPO_ROOT"

[ -x "$VENV/bin/ruff" ] && [ -x "$VENV/bin/mypy" ] || ensure_venv dev
log "ruff check ."
"$VENV/bin/ruff" check .
log "mypy (strict)"
"$VENV/bin/mypy"
