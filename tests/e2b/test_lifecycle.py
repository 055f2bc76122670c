"""The control plane through the real SDK: create, info, list, timeout, metrics, pause,
kill, and the error paths, with the exceptions the SDK documents. One manager behind both
APIs: a sandbox is visible from /v1 and from E2B alike."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from e2b import (
    AuthenticationException,
    SandboxNotFoundException,
    SandboxQuery,
    SandboxState,
    TimeoutException,
)
from e2b_code_interpreter import Sandbox

from tests.conftest import API_KEYS, LiveServer

pytestmark = [pytest.mark.e2b, pytest.mark.docker]


def test_create_maps_template_timeout_metadata(e2b_env: LiveServer) -> None:
    tag = uuid.uuid4().hex
    sandbox = Sandbox.create(timeout=120, metadata={"tag": tag})
    try:
        info = sandbox.get_info()
        assert info.sandbox_id == sandbox.sandbox_id
        assert info.template_id == "code-interpreter-v1"
        assert info.metadata == {"tag": tag}
        assert info.state == SandboxState.RUNNING
        assert 100 < (info.end_at - info.started_at).total_seconds() <= 121
        assert info.cpu_count >= 1 and info.memory_mb > 0
        assert sandbox.is_running() is True
    finally:
        assert sandbox.kill() is True


def test_base_template_alias_and_unknown_template(e2b_env: LiveServer) -> None:
    from e2b import Sandbox as BaseSandbox
    from e2b import SandboxException

    sandbox = BaseSandbox.create()  # template "base"
    try:
        assert sandbox.commands.run("echo ok").stdout == "ok\n"
    finally:
        sandbox.kill()
    with pytest.raises(SandboxException, match="not allowed"):
        Sandbox.create(template="no-such-template")


def test_visible_from_v1_with_the_same_limits(e2b_env: LiveServer) -> None:
    sandbox = Sandbox.create(metadata={"via": "e2b"})
    try:
        with e2b_env.client() as v1:
            seen = v1.get(f"/v1/sandboxes/{sandbox.sandbox_id}")
            assert seen.status_code == 200, seen.text
            assert seen.json()["metadata"] == {"via": "e2b"}
            assert seen.json()["memory_mb"] == sandbox.get_info().memory_mb
            # Other keys do not see it, on either API.
            with e2b_env.client(API_KEYS[1]) as bob:
                assert bob.get(f"/v1/sandboxes/{sandbox.sandbox_id}").status_code == 404
            with pytest.raises(SandboxNotFoundException):
                Sandbox.get_info(sandbox.sandbox_id, api_key=API_KEYS[1])
            # State made through E2B is the same state /v1 sees.
            sandbox.run_code("shared = 5")
            out = v1.post(f"/v1/sandboxes/{sandbox.sandbox_id}/execute", json={"code": "shared"})
            assert out.json()["results"][0]["data"]["text/plain"] == "5"
    finally:
        sandbox.kill()


def test_v1_sandbox_usable_through_e2b_connect(e2b_env: LiveServer) -> None:
    with e2b_env.client() as v1:
        made = v1.post("/v1/sandboxes", json={"metadata": {"via": "v1"}})
        assert made.status_code == 201, made.text
        sandbox_id = made.json()["id"]
        try:
            v1.post(f"/v1/sandboxes/{sandbox_id}/execute", json={"code": "z = 'from v1'"})
            sandbox = Sandbox.connect(sandbox_id)
            assert sandbox.run_code("z").text == "from v1"
            assert sandbox.commands.run("echo hi").stdout == "hi\n"
        finally:
            v1.delete(f"/v1/sandboxes/{sandbox_id}")


def test_list_filters_and_pages(e2b_env: LiveServer) -> None:
    tag = uuid.uuid4().hex
    made = [Sandbox.create(metadata={"batch": tag, "i": str(i)}) for i in range(3)]
    try:
        everything = Sandbox.list(query=SandboxQuery(metadata={"batch": tag})).next_items()
        assert {s.sandbox_id for s in everything} == {s.sandbox_id for s in made}
        one = Sandbox.list(query=SandboxQuery(metadata={"batch": tag, "i": "1"})).next_items()
        assert [s.sandbox_id for s in one] == [made[1].sandbox_id]

        paginator = Sandbox.list(query=SandboxQuery(metadata={"batch": tag}), limit=2)
        pages = []
        while paginator.has_next:
            pages.append([s.sandbox_id for s in paginator.next_items()])
        assert [len(p) for p in pages] == [2, 1]
        assert sorted(i for page in pages for i in page) == sorted(s.sandbox_id for s in made)

        made[0].pause()
        paused = Sandbox.list(query=SandboxQuery(metadata={"batch": tag},
                                                 state=[SandboxState.PAUSED])).next_items()
        assert [s.sandbox_id for s in paused] == [made[0].sandbox_id]
        running = Sandbox.list(query=SandboxQuery(metadata={"batch": tag},
                                                  state=[SandboxState.RUNNING])).next_items()
        assert len(running) == 2
    finally:
        for sandbox in made:
            sandbox.kill()


def test_pause_and_resume_by_connect(e2b_env: LiveServer) -> None:
    sandbox = Sandbox.create()
    try:
        sandbox.run_code("kept = 'yes'")
        assert sandbox.pause() is True
        assert sandbox.get_info().state == SandboxState.PAUSED
        assert sandbox.pause() is False  # already paused: 409
        resumed = Sandbox.connect(sandbox.sandbox_id)
        assert resumed.get_info().state == SandboxState.RUNNING
        assert resumed.run_code("kept").text == "yes"
    finally:
        sandbox.kill()


def test_set_timeout_and_metrics(sbx: Any) -> None:
    sbx.set_timeout(600)
    info = sbx.get_info()
    assert 590 < (info.end_at - info.started_at).total_seconds() - (
        time.time() - info.started_at.timestamp()) <= 601
    sbx.run_code("import numpy as np\nblock = np.ones((4096, 4096))")  # ~128 MiB in use
    metrics = sbx.get_metrics()
    assert len(metrics) == 1
    sample = metrics[0]
    assert sample.cpu_count >= 1
    assert 0 <= sample.cpu_used_pct <= 100
    assert sample.mem_total > sample.mem_used > 100 * 1024 * 1024
    assert sample.disk_total > 0


def test_sandbox_lifetime_ends_it(e2b_env: LiveServer) -> None:
    sandbox = Sandbox.create(timeout=2)
    time.sleep(4)
    assert sandbox.is_running() is False
    with pytest.raises(SandboxNotFoundException):
        sandbox.get_info()


def test_kill_and_a_killed_sandbox(e2b_env: LiveServer) -> None:
    sandbox = Sandbox.create()
    sandbox_id = sandbox.sandbox_id
    assert Sandbox.kill(sandbox_id) is True
    assert Sandbox.kill(sandbox_id) is False  # 404 the second time
    assert sandbox.is_running() is False
    with pytest.raises(TimeoutException):  # what the SDK makes of a 502 on /execute
        sandbox.run_code("1")
    from e2b import SandboxNotRunningException

    with pytest.raises(SandboxNotRunningException):
        sandbox.files.read("/tmp/x")
    with pytest.raises(SandboxNotRunningException):
        sandbox.commands.run("echo hi")
    with pytest.raises(SandboxNotRunningException):
        sandbox.files.list("/tmp")
    with pytest.raises(SandboxNotFoundException):
        sandbox.set_timeout(60)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sandbox_id)


def test_wrong_api_key(e2b_env: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2B_API_KEY", "not-a-selfbox-key")
    with pytest.raises(AuthenticationException):
        Sandbox.create()
    with pytest.raises(AuthenticationException):
        Sandbox.list().next_items()


def test_unknown_sandbox_id(e2b_env: LiveServer) -> None:
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect("0123456789abcdef0123")
    with pytest.raises(SandboxNotFoundException):
        Sandbox.get_info("0123456789abcdef0123")
    assert Sandbox.kill("0123456789abcdef0123") is False


def test_data_plane_needs_the_sandbox_access_token(sbx: Any, e2b_env: LiveServer) -> None:
    headers = {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": "49983"}
    url = e2b_env.url
    # Neither no token, nor a wrong one, nor the API key opens the sandbox.
    for token in (None, "wrong", API_KEYS[0]):
        sent = {**headers, **({"X-Access-Token": token} if token else {})}
        assert httpx.get(f"{url}/files", params={"path": "/etc/hostname"},
                         headers=sent).status_code == 401
        assert httpx.post(f"{url}/execute", json={"code": "1"}, headers=sent).status_code == 401
    unknown = {"E2b-Sandbox-Id": "nope", "X-Access-Token": "x"}
    reply = httpx.get(f"{url}/health", headers=unknown)
    assert reply.status_code == 502
    assert reply.json()["message"] == "sandbox nope was not found"
    assert reply.json()["code"] == 502


def test_killed_while_working(e2b_env: LiveServer) -> None:
    import threading

    from e2b import SandboxNotRunningException

    sandbox = Sandbox.create()
    killer = threading.Timer(1.0, Sandbox.kill, args=(sandbox.sandbox_id,))
    killer.start()
    try:
        with pytest.raises(SandboxNotRunningException):
            sandbox.commands.run("sleep 20")
    finally:
        killer.cancel()

    sandbox = Sandbox.create()
    killer = threading.Timer(1.0, Sandbox.kill, args=(sandbox.sandbox_id,))
    killer.start()
    try:
        # selfbox reports the end of the run as data (E2B would raise TimeoutException).
        execution = sandbox.run_code("import time\ntime.sleep(20)")
        assert execution.error is not None and execution.error.name == "SandboxDied"
        assert "killed" in execution.error.value
    finally:
        killer.cancel()


def test_older_sdk_paths_and_error_bodies(e2b_env: LiveServer) -> None:
    """What e2b < 2.55 sends (v1 create/connect, extra create fields), and the error shape
    ({code, message}) the generated client parses."""
    headers = {"X-API-KEY": API_KEYS[0]}
    url = e2b_env.url
    made = httpx.post(f"{url}/sandboxes", headers=headers, json={
        "templateID": "base", "secure": True, "allow_internet_access": True, "timeout": 60})
    assert made.status_code == 201, made.text
    body = made.json()
    assert {"templateID", "sandboxID", "clientID", "envdVersion"} <= set(body)
    sandbox_id = body["sandboxID"]
    try:
        again = httpx.post(f"{url}/sandboxes/{sandbox_id}/connect", headers=headers,
                           json={"timeout": 120})
        assert again.status_code == 200 and again.json()["sandboxID"] == sandbox_id
        listed = httpx.get(f"{url}/sandboxes", headers=headers)
        assert sandbox_id in [s["sandboxID"] for s in listed.json()]
    finally:
        assert httpx.delete(f"{url}/sandboxes/{sandbox_id}", headers=headers).status_code == 204
    gone = httpx.delete(f"{url}/sandboxes/{sandbox_id}", headers=headers)
    assert gone.status_code == 404
    assert gone.json()["code"] == 404 and isinstance(gone.json()["message"], str)
    denied = httpx.get(f"{url}/v2/sandboxes", headers={"X-API-KEY": "wrong"})
    assert denied.status_code == 401 and denied.json()["code"] == 401
    assert "message" in denied.json()


def test_features_selfbox_lacks_are_named_not_reported_as_a_missing_sandbox(sbx: Any) -> None:
    from e2b import SandboxException

    attempts = {
        "Sandbox.fork": lambda: sbx.fork(),
        "Sandbox.create_snapshot": lambda: sbx.create_snapshot(),
        "Sandbox.list_snapshots": lambda: Sandbox.list_snapshots().next_items(),
    }
    for feature, attempt in attempts.items():
        with pytest.raises(SandboxException, match=r"501.*not supported") as caught:
            attempt()
        assert not isinstance(caught.value, SandboxNotFoundException)
        assert feature in str(caught.value)
    # Network updates exist, but need the operator's egress gateway (docs/network.md): the
    # refusal names the setting, never "sandbox not found".
    with pytest.raises(SandboxException, match=r"422.*SELFBOX_EGRESS_MODE") as refused:
        sbx.update_network({"deny_out": ["0.0.0.0/0"]})
    assert not isinstance(refused.value, SandboxNotFoundException)
    assert sbx.run_code("40 + 2").text == "42"  # the sandbox is untouched


def test_unsupported_features_still_check_the_key(e2b_env: LiveServer) -> None:
    refused = httpx.post(f"{e2b_env.url}/sandboxes/abc/fork", json={})
    assert refused.status_code == 401
    answer = httpx.get(f"{e2b_env.url}/templates/some/builds",
                       headers={"X-API-KEY": API_KEYS[0]})
    assert answer.status_code == 501
    assert answer.json() == {
        "code": 501, "error_code": "not_supported",
        "message": "building templates (selfbox templates are images) is not supported "
                   "by selfbox (see docs/e2b-compat.md)",
        "details": {"feature": "building templates (selfbox templates are images)"}}
