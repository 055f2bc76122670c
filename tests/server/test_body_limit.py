"""The request-size cap, over a real socket: the 413 arrives, and the connection survives.

An answer sent before the body was read used to race with the client's upload: the
server closed a socket with unread bytes, the kernel reset it, and the client saw a
connection error instead of the 413 (the E2B SDK's large uploads hit this). Keeping
the connection open for a second request shows the body was drained, not abandoned.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI, Request

from sandbox_server.errors import install_error_handlers
from sandbox_server.middleware import BodySizeLimit

LIMIT = 1000


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=LIMIT)

    @app.post("/json")
    async def take_json(payload: dict[str, str]) -> dict[str, int]:
        return {"keys": len(payload)}

    @app.post("/raw")
    async def take_raw(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app(), host="127.0.0.1", port=free,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield free
    server.should_exit = True
    thread.join(10)


def _read_response(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed inside a response body"
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _chunked(body: bytes, size: int = 300) -> bytes:
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def _assert_413_then_usable(conn: socket.socket) -> None:
    status, headers, body = _read_response(conn)
    assert status == 413
    error = json.loads(body)
    assert error["error_code"] == "payload_too_large"
    assert "SELFBOX_MAX_REQUEST_BODY_BYTES" in error["message"]
    assert headers.get("connection", "").lower() != "close"
    conn.sendall(_request("GET", "/ping", {}))
    assert _read_response(conn)[0] == 200


@pytest.mark.parametrize("path", ["/json", "/raw"])
def test_declared_length_over_the_cap_is_drained_then_refused(port: int, path: str) -> None:
    body = b"x" * (LIMIT * 400)  # big enough to fill the socket buffers if unread
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(_request("POST", path, {"content-length": str(len(body)),
                                             "content-type": "application/json"}, body))
        _assert_413_then_usable(conn)


@pytest.mark.parametrize("path", ["/json", "/raw"])
def test_chunked_body_over_the_cap_is_a_413_not_a_parse_error(port: int, path: str) -> None:
    body = b"y" * (LIMIT * 50)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(_request("POST", path, {"transfer-encoding": "chunked",
                                             "content-type": "application/json"}, _chunked(body)))
        _assert_413_then_usable(conn)


def test_expect_continue_is_refused_before_the_body_is_sent(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(_request("POST", "/raw", {"content-length": str(LIMIT * 10),
                                               "expect": "100-continue"}))
        status, _, _ = _read_response(conn)
        assert status == 413  # not "100 Continue": the client need not upload at all


def test_an_early_error_still_drains_an_acceptable_body(port: int) -> None:
    # A 422 from validation is sent after FastAPI read the body; a 404 never reads it.
    body = b"z" * (LIMIT - 10)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(_request("POST", "/nowhere", {"content-length": str(len(body))}, body))
        assert _read_response(conn)[0] == 404
        conn.sendall(_request("GET", "/ping", {}))
        assert _read_response(conn)[0] == 200


def test_bodies_within_the_cap_pass(port: int) -> None:
    payload = json.dumps({"a": "b"}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(_request("POST", "/json", {"content-length": str(len(payload)),
                                                "content-type": "application/json"}, payload))
        status, _, body = _read_response(conn)
        assert (status, json.loads(body)) == (200, {"keys": 1})
