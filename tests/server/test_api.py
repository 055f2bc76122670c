"""The /v1 API against a live server and real Docker: the happy path, and bad input."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import API_KEYS, LiveServer

pytestmark = pytest.mark.docker


def run(client: httpx.Client, sandbox: str, code: str, **extra: object) -> dict:
    response = client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": code, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_create_execute_kill(client: httpx.Client) -> None:
    created = client.post("/v1/sandboxes", json={"memory_mb": 256, "metadata": {"t": "1"}})
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["state"] == "running"
    assert info["network"] == "none"
    assert info["memory_mb"] == 256
    sandbox = info["id"]

    out = run(client, sandbox, "print('hello')\n6 * 7")
    assert out["status"] == "ok"
    assert out["stdout"] == "hello\n"
    assert out["results"] == [{"data": {"text/plain": "42"}, "is_main_result": True}]
    assert out["execution_count"] == 1

    assert client.delete(f"/v1/sandboxes/{sandbox}").status_code == 204
    assert client.get(f"/v1/sandboxes/{sandbox}").status_code == 404
    assert client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": "1"}).status_code == 404


def test_state_persists_between_runs(client: httpx.Client, sandbox: str) -> None:
    run(client, sandbox, "import math\nx = 20\ndef f(y):\n    return x + y\nclass C:\n    k = 2")
    out = run(client, sandbox, "f(C.k) + int(math.sqrt(4))")
    assert out["results"][0]["data"]["text/plain"] == "24"
    assert out["execution_count"] == 2


def test_user_errors_are_data(client: httpx.Client, sandbox: str) -> None:
    out = run(client, sandbox, "a = 1\nb = 0\na / b")
    assert out["status"] == "error"
    assert out["error"]["name"] == "ZeroDivisionError"
    assert out["error"]["value"] == "division by zero"
    assert "line 3" in out["error"]["traceback"]
    assert "selfbox_runner" not in out["error"]["traceback"]

    syntax = run(client, sandbox, "def broken(:\n  pass")
    assert syntax["status"] == "error"
    assert syntax["error"]["name"] == "SyntaxError"
    # The sandbox is still usable, and kept its state.
    assert run(client, sandbox, "a + 1")["results"][0]["data"]["text/plain"] == "2"


def test_output_of_child_processes_and_binary_output(client: httpx.Client, sandbox: str) -> None:
    code = (
        "import os, sys\n"
        "os.system('echo from-shell; echo to-stderr >&2')\n"
        "sys.stdout.buffer.write(b'\\xff\\xfebin\\n'); sys.stdout.flush()\n"
        "print('end')"
    )
    out = run(client, sandbox, code)
    assert out["status"] == "ok"
    assert "from-shell\n" in out["stdout"]
    assert "to-stderr\n" in out["stderr"]
    assert "\ufffd\ufffdbin\n" in out["stdout"]
    assert out["stdout"].endswith("end\n")


def test_system_exit_and_keyboard_interrupt_do_not_kill_the_runner(
    client: httpx.Client, sandbox: str
) -> None:
    assert run(client, sandbox, "raise SystemExit(3)")["error"]["name"] == "SystemExit"
    assert run(client, sandbox, "raise KeyboardInterrupt")["error"]["name"] == "KeyboardInterrupt"
    assert run(client, sandbox, "1 + 1")["status"] == "ok"


def test_rich_results(client: httpx.Client, sandbox: str) -> None:
    out = run(client, sandbox, "import pandas as pd\npd.DataFrame({'a': [1, 2]})")
    data = out["results"][0]["data"]
    assert "<table" in data["text/html"]
    assert "a" in data["text/plain"]
    fig = run(client, sandbox, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()")
    assert fig["status"] == "ok", fig
    pngs = [r for r in fig["results"] if "image/png" in r["data"]]
    assert len(pngs) == 1 and not pngs[0]["is_main_result"]
    assert pngs[0]["data"]["image/png"].startswith("iVBOR")  # base64 of the PNG signature


def test_final_answer(client: httpx.Client, sandbox: str) -> None:
    out = run(client, sandbox, "print('working')\nfinal_answer({'n': 3})\nprint('never')")
    assert out["is_final_answer"] is True
    assert out["final_answer"] == {"n": 3}
    assert out["stdout"] == "working\n"


def test_stream_delivers_output_as_it_is_printed(client: httpx.Client, sandbox: str) -> None:
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.4)\n'done'"
    events = []
    with client.stream("POST", f"/v1/sandboxes/{sandbox}/execute/stream",
                       json={"code": code}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        import time

        for line in response.iter_lines():
            if line:
                events.append((time.monotonic(), json.loads(line)))
    kinds = [e["type"] for _, e in events]
    assert kinds[0] == "start" and kinds[-1] == "execution"
    stdout = [(t, e) for t, e in events if e["type"] == "stdout"]
    assert "".join(e["text"] for _, e in stdout) == "0\n1\n2\n"
    # Output arrived while the code ran, not all at the end.
    assert stdout[-1][0] - stdout[0][0] > 0.6
    assert events[-1][1]["execution"]["results"][0]["data"]["text/plain"] == "'done'"


def test_list_filters_by_metadata_and_owner(server: LiveServer) -> None:
    with server.client(API_KEYS[0]) as alice, server.client(API_KEYS[1]) as bob:
        a1 = alice.post("/v1/sandboxes", json={"metadata": {"team": "red"}}).json()["id"]
        a2 = alice.post("/v1/sandboxes", json={"metadata": {"team": "blue"}}).json()["id"]
        b1 = bob.post("/v1/sandboxes", json={"metadata": {"team": "red"}}).json()["id"]
        try:
            red = alice.get("/v1/sandboxes", params={"metadata": "team=red"}).json()
            assert [s["id"] for s in red] == [a1]
            everything = {s["id"] for s in alice.get("/v1/sandboxes").json()}
            assert {a1, a2} <= everything and b1 not in everything
            bad = alice.get("/v1/sandboxes", params={"metadata": "nokeyvalue"})
            assert bad.status_code == 422
        finally:
            for sid in (a1, a2):
                alice.delete(f"/v1/sandboxes/{sid}")
            bob.delete(f"/v1/sandboxes/{b1}")


def test_another_keys_sandbox_is_404_and_auth_is_required(server: LiveServer,
                                                          sandbox: str) -> None:
    with server.client(API_KEYS[1]) as bob:
        assert bob.get(f"/v1/sandboxes/{sandbox}").status_code == 404
        assert bob.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": "1"}).status_code == 404
        assert bob.delete(f"/v1/sandboxes/{sandbox}").status_code == 404
    with server.client(None) as anonymous:
        response = anonymous.get(f"/v1/sandboxes/{sandbox}")
        assert response.status_code == 401
        assert response.json()["error_code"] == "unauthorized"
    with server.client("wrong-key") as wrong:
        assert wrong.post("/v1/sandboxes", json={}).status_code == 401


def test_set_timeout_extends_lifetime(client: httpx.Client, sandbox: str) -> None:
    response = client.post(f"/v1/sandboxes/{sandbox}/timeout", json={"timeout_s": 1000})
    assert response.status_code == 200
    assert 990 < response.json()["timeout_s"] <= 1000
    too_long = client.post(f"/v1/sandboxes/{sandbox}/timeout", json={"timeout_s": 10**9})
    assert too_long.status_code == 422
    assert "SELFBOX_MAX_TIMEOUT_S" in too_long.json()["message"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"memory_mb": 10**7}, "memory_mb"),
        ({"cpu": 64}, "cpu"),
        ({"pids": 10**6}, "pids"),
        ({"disk_mb": 10**7}, "disk_mb"),
        ({"timeout_s": 10**9}, "timeout_s"),
        ({"memory_mb": -1}, "memory_mb"),
        ({"cpu": 0}, "cpu"),
        ({"network": "host"}, "network"),
        ({"network": "bridge"}, "network"),
        ({"template": "alpine:latest"}, "template"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"memory_mb": "lots"}, "memory_mb"),
    ],
)
def test_bad_limits_are_4xx_naming_the_limit(client: httpx.Client, body: dict,
                                             names: str) -> None:
    response = client.post("/v1/sandboxes", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert set(error) >= {"code", "error_code", "message"}
    assert error["code"] == 422
    assert names in error["message"]


def test_malformed_and_oversized_bodies(client: httpx.Client, sandbox: str) -> None:
    bad_json = client.post("/v1/sandboxes", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert bad_json.status_code == 422
    assert "JSON" in bad_json.json()["message"]
    huge = client.post(f"/v1/sandboxes/{sandbox}/execute",
                       json={"code": "x = '" + "a" * (20 * 1024 * 1024) + "'"})
    assert huge.status_code == 413
    assert huge.json()["error_code"] == "payload_too_large"
    missing = client.post(f"/v1/sandboxes/{sandbox}/execute", json={})
    assert missing.status_code == 422 and "code" in missing.json()["message"]
    assert client.get("/v1/sandboxes/does-not-exist").status_code == 404
    bad_timeout = client.post(f"/v1/sandboxes/{sandbox}/execute",
                              json={"code": "1", "timeout_s": -5})
    assert bad_timeout.status_code == 422
    # Nothing above harmed the sandbox.
    assert run(client, sandbox, "1")["status"] == "ok"


def test_openapi_describes_the_api(server: LiveServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    paths = spec["paths"]
    assert "/v1/sandboxes" in paths
    assert "/v1/sandboxes/{sandbox_id}/execute" in paths
    assert "/v1/sandboxes/{sandbox_id}/execute/stream" in paths
    assert "/v1/sandboxes/{sandbox_id}/timeout" in paths


def test_env_vars_reach_the_sandbox(client: httpx.Client) -> None:
    created = client.post("/v1/sandboxes", json={"env": {"GREETING": "hej", "N": "3"}})
    sandbox = created.json()["id"]
    try:
        out = run(client, sandbox, "import os\n(os.environ['GREETING'], os.environ['N'])")
        assert out["results"][0]["data"]["text/plain"] == "('hej', '3')"
        shell = run(client, sandbox, "import subprocess\n"
                    "subprocess.run(['sh', '-c', 'echo $GREETING'], capture_output=True).stdout")
        assert shell["results"][0]["data"]["text/plain"] == "b'hej\\n'"
    finally:
        client.delete(f"/v1/sandboxes/{sandbox}")


def test_warm_pool_sandboxes_are_fresh_and_separate(client: httpx.Client) -> None:
    first = client.post("/v1/sandboxes", json={}).json()["id"]
    second = client.post("/v1/sandboxes", json={}).json()["id"]
    try:
        assert first != second
        run(client, first, "secret = 42\nopen('/home/user/mine', 'w').write('x')")
        out = run(client, second, "import os\n('secret' in globals(), os.listdir('/home/user'))")
        assert out["results"][0]["data"]["text/plain"] == "(False, [])"
        assert run(client, second, "1")["execution_count"] == 2
    finally:
        client.delete(f"/v1/sandboxes/{first}")
        client.delete(f"/v1/sandboxes/{second}")


def test_code_that_breaks_its_streams_leaves_the_sandbox_usable(client: httpx.Client,
                                                                 sandbox: str) -> None:
    run(client, sandbox, "import sys\nsys.stdout = None\nprint('lost')")
    assert run(client, sandbox, "print('restored')")["stdout"] == "restored\n"
    run(client, sandbox, "import os\nos.close(1)\nos.close(2)")
    out = run(client, sandbox, "import os\nprint('py')\nos.system('echo shell >&2')")
    assert (out["stdout"], out["stderr"]) == ("py\n", "shell\n")


def test_a_hanging_repr_is_interrupted_like_any_code(client: httpx.Client, sandbox: str) -> None:
    code = "class Slow:\n    def __repr__(self):\n        while True:\n            pass\nSlow()"
    assert run(client, sandbox, code, timeout_s=1)["status"] == "timeout"
    assert run(client, sandbox, "'alive'")["results"][0]["data"]["text/plain"] == "'alive'"


def test_a_client_leaving_mid_stream_does_not_block_the_sandbox(client: httpx.Client,
                                                                 sandbox: str) -> None:
    code = "import time\nprint('started', flush=True)\ntime.sleep(600)"
    with client.stream("POST", f"/v1/sandboxes/{sandbox}/execute/stream",
                       json={"code": code}) as response:
        for line in response.iter_lines():
            if '"stdout"' in line:
                break  # walk away while the code sleeps
    out = run(client, sandbox, "'next'")
    assert out["results"][0]["data"]["text/plain"] == "'next'"
    assert out["duration_s"] < 2
