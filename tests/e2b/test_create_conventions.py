"""What E2B's SDK relies on at create, shown with the unmodified SDK: an ``Idempotency-Key``
gives the same sandbox again; a 429 for the server-wide cap carries ``Retry-After`` (the SDK
waits and retries), one for the caller's own cap ``Should-Retry: false`` (the SDK gives up at
once). The same holds for ``/v1``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, start_server, stop_server

pytestmark = [pytest.mark.docker, pytest.mark.e2b]

KEYS = ("conv-alice", "conv-bob", "conv-carol")


def rejections(server: LiveServer) -> int:
    """429s the server answered for a sandbox cap (its own count, from /metrics)."""
    text = httpx.get(server.url + "/metrics", timeout=30).text
    for line in text.splitlines():
        if (line.startswith("selfbox_http_errors_total{") and 'status="429"' in line
                and 'kind="too_many_sandboxes"' in line):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


@pytest.fixture
def capped(tmp_path: Path, docker_ready: None) -> Iterator[LiveServer]:
    """Two live sandboxes in all, one per key; a global-cap 429 says retry after 1 s."""
    live = start_server(tmp_path, SELFBOX_API_KEYS=",".join(KEYS), SELFBOX_MAX_SANDBOXES="2",
                        SELFBOX_MAX_SANDBOXES_PER_KEY="1", SELFBOX_CAP_RETRY_AFTER_S="1",
                        SELFBOX_WARM_POOL_SIZE="0")
    yield live
    stop_server(live)


def use_sdk(monkeypatch: pytest.MonkeyPatch, server: LiveServer, key: str) -> None:
    monkeypatch.setenv("E2B_API_URL", server.url)
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url)
    monkeypatch.setenv("E2B_API_KEY", key)
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    monkeypatch.delenv("E2B_DOMAIN", raising=False)


def test_idempotency_key_gives_the_same_sandbox(e2b_env: LiveServer) -> None:
    from e2b import SandboxException, SandboxQuery
    from e2b_code_interpreter import Sandbox

    key = f"conv-{time.time_ns()}"
    first = Sandbox.create(idempotency_key=key, metadata={"conv": key})
    try:
        again = Sandbox.create(idempotency_key=key, metadata={"conv": key})
        assert again.sandbox_id == first.sandbox_id
        assert again.run_code("6 * 7").text == "42"
        listed = Sandbox.list(query=SandboxQuery(metadata={"conv": key})).next_items()
        assert [s.sandbox_id for s in listed] == [first.sandbox_id]
        # The same key for another request is refused, not answered with the first sandbox.
        with pytest.raises(SandboxException, match=r"422.*Idempotency-Key"):
            Sandbox.create(idempotency_key=key, metadata={"conv": "other"})
        # Without a key, each create is a new sandbox.
        other = Sandbox.create(metadata={"conv": key})
        assert other.sandbox_id != first.sandbox_id
        other.kill()
    finally:
        first.kill()


def test_v1_create_is_idempotent_per_key(client: httpx.Client, server: LiveServer) -> None:
    headers = {"Idempotency-Key": f"v1-{time.time_ns()}"}
    first = client.post("/v1/sandboxes", json={"memory_mb": 256}, headers=headers)
    assert first.status_code == 201, first.text
    try:
        again = client.post("/v1/sandboxes", json={"memory_mb": 256}, headers=headers)
        assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
        different = client.post("/v1/sandboxes", json={"memory_mb": 512}, headers=headers)
        assert different.status_code == 422
        assert "Idempotency-Key" in different.json()["message"]
        # Another API key's identical header is its own request.
        with server.client(server.env["SELFBOX_API_KEYS"].split(",")[1]) as bob:
            theirs = bob.post("/v1/sandboxes", json={"memory_mb": 256}, headers=headers)
            assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
            bob.delete(f"/v1/sandboxes/{theirs.json()['id']}")
    finally:
        client.delete(f"/v1/sandboxes/{first.json()['id']}")


def test_caps_tell_the_sdk_whether_to_retry(capped: LiveServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from e2b import RateLimitException
    from e2b_code_interpreter import Sandbox

    alice, bob, carol = (capped.client(k) for k in KEYS)
    use_sdk(monkeypatch, capped, KEYS[0])
    mine = Sandbox.create()

    # Alice's own cap: only she can free it, so the SDK must not retry.
    with pytest.raises(RateLimitException):
        Sandbox.create()
    assert rejections(capped) == 1
    per_key = alice.post("/v1/sandboxes", json={})
    assert per_key.status_code == 429 and per_key.headers["should-retry"] == "false"
    assert "retry-after" not in per_key.headers

    # The server-wide cap: it frees when anyone's sandbox ends, so the SDK waits Retry-After
    # and tries again, with the same Idempotency-Key.
    bobs = bob.post("/v1/sandboxes", json={}).json()["id"]
    mine.kill()
    carols = carol.post("/v1/sandboxes", json={}).json()["id"]
    before = rejections(capped)
    global_cap = alice.post("/v1/sandboxes", json={})
    assert global_cap.status_code == 429 and global_cap.headers["retry-after"] == "1"
    assert "should-retry" not in global_cap.headers

    def free_a_slot() -> None:  # once the SDK has been refused, bob's sandbox ends
        deadline = time.monotonic() + 60
        while rejections(capped) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        bob.delete(f"/v1/sandboxes/{bobs}")

    freer = threading.Thread(target=free_a_slot)
    freer.start()
    try:
        retried = Sandbox.create(idempotency_key="conv-retried")
    finally:
        freer.join(70)
    assert rejections(capped) >= before + 2  # refused first, then served on a retry
    assert retried.run_code("1 + 1").text == "2"
    retried.kill()
    carol.delete(f"/v1/sandboxes/{carols}")
    for http in (alice, bob, carol):
        http.close()
