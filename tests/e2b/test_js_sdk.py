"""The unmodified E2B JavaScript SDK (``@e2b/code-interpreter``) against selfbox.

Node and npm come from the machine (``scripts/test.sh`` installs them when missing); the SDK
is installed from npm at the version pinned in ``tests/e2b/js/package.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import API_KEYS, IN_CI, LiveServer

pytestmark = [pytest.mark.e2b, pytest.mark.docker, pytest.mark.slow]

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def js_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if IN_CI:
            pytest.fail("node and npm are needed for the E2B JavaScript SDK tests "
                        "(scripts/test.sh installs them)")
        pytest.skip("node and npm are not installed")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    if int(version.strip().lstrip("v").split(".")[0] or 0) < 20:
        pytest.skip(f"the E2B JavaScript SDK needs Node.js 20 or newer (found {version.strip()})")
    project = tmp_path_factory.mktemp("e2b-js")
    for name in ("package.json", "sdk_check.mjs"):
        shutil.copy(JS_DIR / name, project / name)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=project, check=True, timeout=300)
    return project


def test_the_javascript_sdk_runs_unmodified(js_project: Path, server: LiveServer) -> None:
    env = {**os.environ, "E2B_API_URL": server.url, "E2B_SANDBOX_URL": server.url,
           "E2B_API_KEY": API_KEYS[0]}
    done = subprocess.run(["node", "sdk_check.mjs"], cwd=js_project, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "state": "42",
        "stdout": ["a\n", "b\n"],
        "error": "ZeroDivisionError",
        "chart": "line",
        "read": "hello from js",
        "listed": ["a.txt"],
        "command": [0, "hi\n", "err\n"],
        "exit": ["CommandExitError", 3],
        "info": {"suite": "js"},
        "listedSandboxes": True,
        "killed": True,
        "afterKill": "SandboxNotFoundError",
    }
