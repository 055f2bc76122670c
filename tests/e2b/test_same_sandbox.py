"""An E2B sandbox is a selfbox sandbox: same hardening, same caps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest
from e2b import RateLimitException
from e2b_code_interpreter import Sandbox

from tests.conftest import API_KEYS, start_server, stop_server

pytestmark = [pytest.mark.e2b, pytest.mark.docker]


def test_e2b_sandboxes_are_hardened_like_any_other(sbx: Any) -> None:
    container = docker.from_env().containers.get(f"selfbox-{sbx.sandbox_id}")
    config, host = container.attrs["Config"], container.attrs["HostConfig"]
    assert config["User"] == "1000:1000"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["NetworkMode"] == "none"
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0
    # And from inside: no network, whatever the SDK asked for.
    probe = sbx.run_code("import socket\nsocket.create_connection(('1.1.1.1', 53), 2)")
    assert probe.error is not None and probe.error.name in ("OSError", "TimeoutError")


def test_per_key_cap_applies_to_e2b_creates(tmp_path: Path, docker_ready: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    live = start_server(tmp_path, SELFBOX_MAX_SANDBOXES_PER_KEY="1")
    monkeypatch.setenv("E2B_API_URL", live.url)
    monkeypatch.setenv("E2B_SANDBOX_URL", live.url)
    monkeypatch.setenv("E2B_API_KEY", API_KEYS[0])
    try:
        first = Sandbox.create(allow_internet_access=True)  # network is off on this server
        assert first.get_info().allow_internet_access is False
        with pytest.raises(RateLimitException, match="SELFBOX_MAX_SANDBOXES_PER_KEY"):
            Sandbox.create()
        first.kill()
        Sandbox.create().kill()  # room again
    finally:
        stop_server(live)
