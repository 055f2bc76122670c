"""The direct ASGI route for ``POST /v1/sandboxes/{id}/execute``: it serves ordinary requests,
and every other one is answered by the FastAPI route exactly as before (real Docker)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.docker


def _metric(server: LiveServer, route: str, status: str) -> float:
    text = server.client().get("/metrics").text
    for line in text.splitlines():
        if (line.startswith("selfbox_http_requests_total{") and f'route="{route}"' in line
                and f'status="{status}"' in line and 'method="POST"' in line):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_ordinary_request_is_answered_with_the_documented_shape(
        server: LiveServer, client: httpx.Client, sandbox: str) -> None:
    route = "/v1/sandboxes/{sandbox_id}/execute"
    before = _metric(server, route, "200")
    reply = client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": "print('é')\n1 + 1"},
                        headers={"X-Request-ID": "fast-1"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-request-id"] == "fast-1"
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["stdout"] == "é\n"
    assert body["results"] == [{"data": {"text/plain": "2"}, "is_main_result": True}]
    assert set(body) == {"stdout", "stderr", "results", "error", "status", "duration_s",
                         "execution_count", "is_final_answer", "final_answer"}
    # Counted under the route's template, like every other request.
    assert _metric(server, route, "200") == before + 1


def test_lone_surrogates_and_big_ints_survive_the_response(client: httpx.Client,
                                                           sandbox: str) -> None:
    reply = client.post(f"/v1/sandboxes/{sandbox}/execute",
                        json={"code": "print('\\ud800'.encode('utf-8', 'surrogatepass') != b'')"
                                      "\n10 ** 30"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["results"][0]["data"]["text/plain"] == str(10**30)


@pytest.mark.parametrize(("headers", "body", "status", "code"), [
    ({"Authorization": "Bearer wrong"}, b'{"code": "1"}', 401, "unauthorized"),
    ({"Authorization": ""}, b'{"code": "1"}', 401, "unauthorized"),
    ({}, b'{"code": "1", "surprise": 1}', 422, "invalid_request"),
    ({}, b'{"code": 1', 422, "invalid_request"),
    ({}, b'{"timeout_s": -1, "code": "1"}', 422, "invalid_request"),
    ({"Content-Type": "text/plain"}, b'{"code": "1"}', 422, "invalid_request"),
])
def test_unusual_requests_get_the_same_errors_as_before(
        client: httpx.Client, sandbox: str, headers: dict[str, str], body: bytes, status: int,
        code: str) -> None:
    reply = client.post(f"/v1/sandboxes/{sandbox}/execute", content=body,
                        headers={"Content-Type": "application/json", **headers})
    assert reply.status_code == status, reply.text
    assert reply.json()["error_code"] == code
    assert reply.headers.get("x-request-id")
    if status == 401:
        assert reply.headers["www-authenticate"] == "Bearer"


def test_a_query_string_goes_to_the_full_route(client: httpx.Client, sandbox: str) -> None:
    reply = client.post(f"/v1/sandboxes/{sandbox}/execute?unused=1", json={"code": "3 * 3"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["results"][0]["data"]["text/plain"] == "9"


def test_unknown_sandbox_and_oversized_code(server: LiveServer, client: httpx.Client,
                                            sandbox: str) -> None:
    reply = client.post("/v1/sandboxes/nope/execute", json={"code": "1"})
    assert reply.status_code == 404
    assert reply.json()["error_code"] == "not_found"
    # A limit the run itself checks goes through the server's one error table.
    big = "x" * (1024 * 1024 + 1)
    reply = client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": big})
    assert reply.status_code == 422
    assert "SELFBOX_MAX_CODE_BYTES" in reply.json()["message"]

