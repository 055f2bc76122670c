"""Fixtures that point the real, unmodified E2B SDK at a live selfbox server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import API_KEYS, LiveServer


@pytest.fixture
def e2b_env(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """E2B_API_URL / E2B_SANDBOX_URL at the selfbox server (no trailing slash), a valid key."""
    monkeypatch.setenv("E2B_API_URL", server.url)
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url)
    monkeypatch.setenv("E2B_API_KEY", API_KEYS[0])
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    monkeypatch.delenv("E2B_DOMAIN", raising=False)
    return server


@pytest.fixture
def sbx(e2b_env: LiveServer) -> Iterator[object]:
    """A sandbox made with ``e2b_code_interpreter.Sandbox.create()``, killed afterwards."""
    from e2b_code_interpreter import Sandbox

    sandbox = Sandbox.create()
    yield sandbox
    sandbox.kill()
