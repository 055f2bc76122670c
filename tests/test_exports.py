"""Every package re-exports its public names with ``__all__``, and each of them resolves."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    "agent",
    "executors",
    "executors.exceptions",
    "executors.local",
    "sandbox_server",
    "sandbox_server.exceptions",
    "sandbox_server.e2b",
    "sandbox_server.ingress",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    for public in exported:
        assert hasattr(module, public), f"{name}.__all__ names {public!r}, which is missing"


@pytest.mark.parametrize("name", ["agent", "executors", "executors.local"])
def test_light_imports_pull_no_optional_sdk(name: str) -> None:
    """``import agent`` / ``import executors`` load neither docker, fastapi nor e2b."""
    code = (
        f"import sys, {name}\n"
        "heavy = [m for m in ('docker', 'fastapi', 'e2b', 'e2b_code_interpreter', 'uvicorn',"
        " 'starlette', 'smolagents') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_exception_roots_at_sandbox_error() -> None:
    from executors.exceptions import SandboxError

    for name in PACKAGES:
        module = importlib.import_module(name)
        for public in getattr(module, "__all__", []):
            value = getattr(module, public)
            if isinstance(value, type) and issubclass(value, Exception):
                assert issubclass(value, SandboxError), f"{name}.{public} is not a SandboxError"
