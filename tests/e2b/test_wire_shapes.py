"""Control-plane JSON shapes, checked with the SDK's own generated models (no Docker)."""

from __future__ import annotations

import time
import urllib.parse

import pytest

from sandbox_server.e2b.control import _after, _cursor, _metadata_filter
from sandbox_server.e2b.schemas import ENVD_VERSION, listed_sandbox, sandbox_created
from sandbox_server.exceptions import InvalidRequest
from sandbox_server.sandbox import Limits, Sandbox

pytestmark = pytest.mark.e2b  # the SDK's models, no Docker


def _sandbox() -> Sandbox:
    now = time.time()
    sandbox = Sandbox(id="abc123", owner="o", template="selfbox/runtime:latest",
                      limits=Limits(cpu=0.5, memory_mb=512, pids=256, disk_mb=256,
                                    network="none"),
                      metadata={"k": "v"}, env={}, created_at=now, expires_at=now + 300)
    sandbox.extra["e2b_template"] = "code-interpreter-v1"
    sandbox.state = "paused"
    return sandbox


def test_created_sandbox_parses_as_the_sdk_model() -> None:
    from e2b.api.client.models import Sandbox as ApiSandbox

    parsed = ApiSandbox.from_dict(sandbox_created(_sandbox(), "tok"))
    assert parsed.sandbox_id == "abc123"
    assert parsed.template_id == "code-interpreter-v1"
    assert parsed.envd_access_token == "tok"
    assert parsed.traffic_access_token == "tok"
    assert parsed.envd_version == ENVD_VERSION


def test_listed_sandbox_parses_as_the_sdk_models() -> None:
    from e2b.api.client.models import ListedSandbox, SandboxDetail
    from e2b.sandbox.sandbox_api import SandboxInfo

    data = listed_sandbox(_sandbox())
    listed = ListedSandbox.from_dict(dict(data))
    info = SandboxInfo._from_listed_sandbox(listed)
    assert info.state.value == "paused"
    assert info.cpu_count == 1 and info.memory_mb == 512
    assert info.metadata == {"k": "v"}
    assert round((info.end_at - info.started_at).total_seconds()) == 300
    detail = SandboxDetail.from_dict(dict(data))
    assert detail.disk_size_mb == 256


def test_metadata_filter_undoes_the_sdks_encoding() -> None:
    wanted = {"team name": "a&b=c", "ünï": "%"}
    # What e2b's paginator sends, after the HTTP layer decoded the query string once.
    sent = urllib.parse.urlencode({urllib.parse.quote(k): urllib.parse.quote(v)
                                   for k, v in wanted.items()})
    assert _metadata_filter(sent) == wanted
    assert _metadata_filter(None) == {}


def test_paging_cursor_round_trips_and_rejects_garbage() -> None:
    sandbox = _sandbox()
    assert _after(_cursor(sandbox)) == (sandbox.created_at, sandbox.id)
    with pytest.raises(InvalidRequest):
        _after("not-a-cursor")
