"""Ingress: HTTP through ``/v1/sandboxes/{id}/ports/{port}/...`` to a server inside a sandbox
that has no network, against a live server and real Docker."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from sandbox_server.ingress import match_host
from tests.conftest import API_KEYS, LiveServer

pytestmark = pytest.mark.docker

# A server for inside the sandbox: echoes what it received as JSON, serves N bytes at /bytes/N.
ECHO_SERVER = r'''
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    def _answer(self):
        if self.path.startswith("/bytes/"):
            size = int(self.path.split("/")[2])
            body = bytes(i % 251 for i in range(size))
            ctype = "application/octet-stream"
        else:
            length = int(self.headers.get("content-length") or 0)
            body = json.dumps({"method": self.command, "path": self.path,
                               "headers": {k.lower(): v for k, v in self.headers.items()},
                               "body": self.rfile.read(length).decode()}).encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("x-from", "sandbox")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_DELETE = _answer
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
'''

START = '''
import pathlib, socket, subprocess, sys, time
pathlib.Path("/home/user/echo.py").write_text({src!r})
subprocess.Popen([sys.executable, "/home/user/echo.py", "{port}"], start_new_session=True)
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
print("up")
'''


def start_echo(client: httpx.Client, sandbox: str, port: int) -> None:
    out = client.post(f"/v1/sandboxes/{sandbox}/execute",
                      json={"code": START.format(src=ECHO_SERVER, port=port)}).json()
    assert out["stdout"] == "up\n", out


def test_http_server_in_a_sandbox_answers_through_the_proxy(
        client: httpx.Client, sandbox: str) -> None:
    # Plain `python -m http.server`, as a user would start it: serves the home directory.
    code = '''
import pathlib, socket, subprocess, sys, time
pathlib.Path("/home/user/hello.txt").write_text("hello from inside")
subprocess.Popen([sys.executable, "-m", "http.server", "8000", "--bind", "127.0.0.1"],
                 cwd="/home/user", start_new_session=True, stderr=subprocess.DEVNULL)
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", 8000), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
'''
    assert client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": code}).status_code == 200
    response = client.get(f"/v1/sandboxes/{sandbox}/ports/8000/hello.txt")
    assert response.status_code == 200, response.text
    assert response.text == "hello from inside"
    listing = client.get(f"/v1/sandboxes/{sandbox}/ports/8000")
    assert listing.status_code == 200 and "hello.txt" in listing.text
    assert client.get(f"/v1/sandboxes/{sandbox}/ports/8000/missing").status_code == 404
    # The sandbox still has no network at all.
    info = client.get(f"/v1/sandboxes/{sandbox}").json()
    assert info["network"] == "none"


def test_request_is_forwarded_faithfully_without_the_api_key(
        client: httpx.Client, sandbox: str) -> None:
    start_echo(client, sandbox, 8081)
    response = client.post(f"/v1/sandboxes/{sandbox}/ports/8081/api/items?q=1&r=two",
                           content=b'{"a": 1}', headers={"X-Custom": "yes"})
    assert response.status_code == 200, response.text
    assert response.headers["x-from"] == "sandbox"
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["path"] == "/api/items?q=1&r=two"
    assert seen["body"] == '{"a": 1}'
    assert seen["headers"]["x-custom"] == "yes"
    assert seen["headers"]["host"] == "localhost:8081"
    assert seen["headers"]["x-forwarded-prefix"] == f"/v1/sandboxes/{sandbox}/ports/8081"
    assert "authorization" not in seen["headers"]
    assert API_KEYS[0] not in response.text
    assert client.delete(f"/v1/sandboxes/{sandbox}/ports/8081/x").json()["method"] == "DELETE"


def test_large_bodies_stream_intact_both_ways(client: httpx.Client, sandbox: str) -> None:
    start_echo(client, sandbox, 8082)
    size = 5 * 1024 * 1024 + 17  # many windows and chunks
    response = client.get(f"/v1/sandboxes/{sandbox}/ports/8082/bytes/{size}")
    assert response.status_code == 200
    expected = bytes(i % 251 for i in range(size))
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(expected).hexdigest()
    upload = "x" * (1024 * 1024)
    echoed = client.put(f"/v1/sandboxes/{sandbox}/ports/8082/up", content=upload.encode())
    assert echoed.json()["body"] == upload
    # Many requests in a row: tunnels are closed and their slots given back.
    for _ in range(40):
        assert client.get(f"/v1/sandboxes/{sandbox}/ports/8082/bytes/10").status_code == 200


def test_nothing_listening_is_a_clear_502(client: httpx.Client, sandbox: str) -> None:
    response = client.get(f"/v1/sandboxes/{sandbox}/ports/9999/")
    assert response.status_code == 502
    body = response.json()
    assert body["error_code"] == "port_unreachable"
    assert "port 9999" in body["message"]
    assert client.get(f"/v1/sandboxes/{sandbox}/ports/70000/").status_code in (422, 502)


def test_another_key_gets_404_and_no_key_401(server: LiveServer, client: httpx.Client,
                                             sandbox: str) -> None:
    start_echo(client, sandbox, 8083)
    with server.client(API_KEYS[1]) as bob:
        assert bob.get(f"/v1/sandboxes/{sandbox}/ports/8083/").status_code == 404
    with server.client(None) as anonymous:
        assert anonymous.get(f"/v1/sandboxes/{sandbox}/ports/8083/").status_code == 401
    assert client.get(f"/v1/sandboxes/{sandbox}/ports/8083/").status_code == 200


def test_garbage_from_the_sandbox_is_a_502_not_a_crash(client: httpx.Client,
                                                       sandbox: str) -> None:
    code = '''
import socket, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 8084)); srv.listen()
def serve():
    while True:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(b"NOT HTTP AT ALL\\r\\n" + b"x" * 200000)
        conn.close()
threading.Thread(target=serve, daemon=True).start()
'''
    client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": code})
    response = client.get(f"/v1/sandboxes/{sandbox}/ports/8084/")
    assert response.status_code == 502
    assert response.json()["error_code"] == "bad_upstream_response"
    # The sandbox is fine afterwards.
    out = client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": "1 + 1"}).json()
    assert out["results"][0]["data"]["text/plain"] == "2"


@pytest.mark.parametrize(("host", "domain", "expected"), [
    ("3000-abc123.e2b.app", None, (3000, "abc123")),
    ("3000-abc123.e2b.app:443", None, (3000, "abc123")),
    ("3000-ABC123.Sandbox.Example", "sandbox.example", (3000, "abc123")),
    ("3000-abc123.other.example", "sandbox.example", None),
    ("49983-abc123.e2b.app", None, None),  # envd: the data plane, not ingress
    ("49999-abc123.e2b.app", None, None),
    ("127.0.0.1:8000", None, None),
    ("localhost", None, None),
    ("99999-abc.e2b.app", None, None),
])
def test_e2b_host_matching(host: str, domain: str | None,
                           expected: tuple[int, str] | None) -> None:
    assert match_host(host, domain) == expected


# A WebSocket echo server for inside the sandbox, stdlib only (the image has no WS library):
# upper-cases text, reverses bytes, answers pings (a minimal RFC 6455 server, test code).
WS_SERVER = r'''
import base64, hashlib, socket, struct, sys, threading
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
def send(conn, opcode, payload):
    head = bytes([0x80 | opcode])
    n = len(payload)
    head += bytes([n]) if n < 126 else (bytes([126]) + struct.pack(">H", n) if n < 65536
                                        else bytes([127]) + struct.pack(">Q", n))
    conn.sendall(head + payload)
def serve(conn):
    request = b""
    while b"\r\n\r\n" not in request:
        request += conn.recv(4096)
    lines = request.decode().split("\r\n")[1:]
    headers = dict(line.split(": ", 1) for line in lines if ": " in line)
    key = {k.lower(): v for k, v in headers.items()}["sec-websocket-key"].strip()
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    path = request.split(b" ")[1].decode()
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n").encode())
    send(conn, 1, ("hello " + path).encode())
    try:
        while True:
            b1, b2 = recv_exact(conn, 2)
            opcode, n = b1 & 0x0F, b2 & 0x7F
            if n == 126:
                n = struct.unpack(">H", recv_exact(conn, 2))[0]
            elif n == 127:
                n = struct.unpack(">Q", recv_exact(conn, 8))[0]
            mask = recv_exact(conn, 4)
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(recv_exact(conn, n)))
            if opcode == 1:
                send(conn, 1, payload.decode().upper().encode())
            elif opcode == 2:
                send(conn, 2, payload[::-1])
            elif opcode == 8:
                send(conn, 8, payload[:2])
                return
    except EOFError:
        return
    finally:
        conn.close()
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''


def ws_exchange(url: str, path: str, headers: list[tuple[str, str]],
                messages: list[str | bytes]) -> tuple[int | None, list[str | bytes]]:
    """A WebSocket client (wsproto over a socket): the HTTP status if refused, else the
    messages received (the greeting, then one answer per message sent)."""
    import socket as socketlib
    from urllib.parse import urlsplit

    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (
        BytesMessage,
        CloseConnection,
        Message,
        RejectConnection,
        Request,
        TextMessage,
    )

    parts = urlsplit(url)
    sock = socketlib.create_connection((parts.hostname, parts.port), timeout=30)
    ws = WSConnection(ConnectionType.CLIENT)
    host = dict((k.lower(), v) for k, v in headers).pop("host", f"{parts.hostname}")
    sock.sendall(ws.send(Request(host=host, target=path, extra_headers=[
        (k.encode(), v.encode()) for k, v in headers if k.lower() != "host"])))
    received: list[str | bytes] = []
    pending = list(messages)
    partial: list[str | bytes] = []
    closing = False
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return None, received
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, RejectConnection):
                    return event.status_code, received
                if isinstance(event, CloseConnection):
                    return None, received
                if not isinstance(event, TextMessage | BytesMessage):
                    continue
                partial.append(event.data)
                if not event.message_finished:
                    continue
                joined = ("".join(str(p) for p in partial) if isinstance(event, TextMessage)
                          else b"".join(bytes(p) for p in partial))  # type: ignore[misc]
                received.append(joined)
                partial = []
                if pending:
                    sock.sendall(ws.send(Message(data=pending.pop(0))))
                elif not closing:
                    closing = True
                    sock.sendall(ws.send(CloseConnection(code=1000)))
    finally:
        sock.close()


def test_websocket_through_the_proxy(server: LiveServer, client: httpx.Client,
                                     sandbox: str) -> None:
    code = f'''
import pathlib, socket, subprocess, sys, time
pathlib.Path("/home/user/ws.py").write_text({WS_SERVER!r})
subprocess.Popen([sys.executable, "/home/user/ws.py", "8090"], start_new_session=True)
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", 8090), timeout=1).close(); break
    except OSError:
        time.sleep(0.1)
'''
    client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": code})
    auth = [("Authorization", f"Bearer {API_KEYS[0]}")]
    status, got = ws_exchange(server.url, f"/v1/sandboxes/{sandbox}/ports/8090/chat?room=1",
                              auth, ["hi there", b"\x01\x02\x03", "x" * 200_000])
    assert status is None, status
    assert got == ["hello /chat?room=1", "HI THERE", b"\x03\x02\x01", "X" * 200_000]
    # Another key: refused before any upgrade.
    status, got = ws_exchange(server.url, f"/v1/sandboxes/{sandbox}/ports/8090/",
                              [("Authorization", f"Bearer {API_KEYS[1]}")], ["x"])
    assert status is not None and status >= 400 and got == []
