"""Ingress through E2B's host scheme: ``sbx.get_host(port)`` names a server inside the sandbox,
reached with the sandbox's access token (the unmodified SDK makes the sandbox)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import API_KEYS, LiveServer

pytestmark = pytest.mark.docker

SERVE = ("cd /home/user && echo -n served-by-sandbox > index.txt && "
         "nohup python3 -m http.server 3000 --bind 127.0.0.1 >/dev/null 2>&1 &")
WAIT = ("python3 -c 'import socket,time\n"
        "for _ in range(100):\n"
        "    try: socket.create_connection((\"127.0.0.1\", 3000), 1).close(); break\n"
        "    except OSError: time.sleep(0.1)'")


def test_get_host_reaches_a_server_in_the_sandbox(e2b_env: LiveServer, sbx: Any) -> None:
    from e2b_code_interpreter import Sandbox

    sbx.commands.run(SERVE)
    sbx.commands.run(WAIT)
    host = sbx.get_host(3000)
    assert host == f"3000-{sbx.sandbox_id}.e2b.app"  # the SDK's default domain
    token = sbx.traffic_access_token
    assert token
    with httpx.Client(base_url=e2b_env.url, timeout=30) as http:
        ok = http.get("/index.txt", headers={"Host": host, "E2B-Traffic-Access-Token": token})
        assert ok.status_code == 200, ok.text
        assert ok.text == "served-by-sandbox"
        also = http.get("/index.txt", headers={"Host": host, "X-Access-Token": token})
        assert also.text == "served-by-sandbox"
        # No token: 401; another sandbox's token (another key's): 404, nothing revealed.
        assert http.get("/index.txt", headers={"Host": host}).status_code == 401
        other = Sandbox.create(api_key=API_KEYS[1])
        try:
            wrong = http.get("/index.txt", headers={
                "Host": host, "X-Access-Token": other.traffic_access_token or "x"})
            assert wrong.status_code == 404
            # ... and a token cannot reach another sandbox's host.
            theirs = http.get("/index.txt", headers={
                "Host": other.get_host(3000), "X-Access-Token": token})
            assert theirs.status_code == 404
        finally:
            other.kill()
        # The internal route cannot be reached without the Host scheme.
        direct = http.get(f"/_ingress/e2b/{sbx.sandbox_id}/3000/index.txt",
                          headers={"X-Access-Token": token})
        assert direct.status_code == 404
        # The envd port on the same host scheme is still the data plane, not ingress.
        health = http.get("/health", headers={"Host": sbx.get_host(49983),
                                              "E2b-Sandbox-Id": sbx.sandbox_id,
                                              "X-Access-Token": token})
        assert health.status_code == 204


def test_websocket_on_the_e2b_host(e2b_env: LiveServer, sbx: Any) -> None:
    from tests.server.test_ingress import WS_SERVER, ws_exchange

    sbx.files.write("/home/user/ws.py", WS_SERVER)
    sbx.commands.run("nohup python3 /home/user/ws.py 3000 >/dev/null 2>&1 &")
    sbx.commands.run(WAIT)
    token = sbx.traffic_access_token
    status, got = ws_exchange(e2b_env.url, "/live", [("Host", sbx.get_host(3000)),
                                                     ("X-Access-Token", token)], ["ping"])
    assert status is None and got == ["hello /live", "PING"]
    status, got = ws_exchange(e2b_env.url, "/live", [("Host", sbx.get_host(3000))], ["x"])
    assert status is not None and status >= 400 and got == []
