"""``import agent`` stays light: no executor back end or server dependency is imported."""

from __future__ import annotations

import json
import subprocess
import sys

import agent

HEAVY = ("docker", "fastapi", "e2b", "e2b_code_interpreter", "smolagents", "uvicorn",
         "executors.local", "executors.docker", "executors.e2b", "sandbox_server")


def test_import_agent_pulls_in_no_back_end():
    probe = (
        "import json, sys\n"
        "import agent\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules "
        "if any(m == h or m.startswith(h + '.') for h in heavy))))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert json.loads(out.stdout) == []


def test_all_names_exist_and_are_unique():
    for name in agent.__all__:
        assert hasattr(agent, name), name
    assert len(set(agent.__all__)) == len(agent.__all__)


def test_errors_are_rooted_at_sandbox_error():
    from executors.exceptions import SandboxError

    for name in agent.__all__:
        obj = getattr(agent, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, SandboxError), name
            assert issubclass(obj, agent.AgentError), name
