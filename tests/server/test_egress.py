"""Egress policies enforced by the real gateway (HAProxy + dnsmasq) against a fake internet in
a network namespace: a sandbox reaches what its policy allows and nothing else, with a clear
error; policies change live; the unmodified E2B SDK's ``network=`` / ``update_network`` work.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEYS, IN_CI, LiveServer, start_server, stop_server
from tests.server import fake_internet

pytestmark = pytest.mark.docker

GATEWAY_IMAGE = os.environ.get("SELFBOX_TEST_EGRESS_GATEWAY_IMAGE",
                               "selfbox/egress-gateway:latest")

# Runs in the sandbox: fetch each URL, report status and body, or the error.
PROBE = r'''
import json, socket, ssl, urllib.request, urllib.error
def probe(url, timeout=5):
    ctx = ssl.create_default_context(cafile="/home/user/ca.pem")
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return {"status": r.status, "body": r.read().decode()}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode()}
    except Exception as e:
        reason = getattr(e, "reason", e)
        return {"error": f"{type(reason).__name__}: {reason}"}
'''


@pytest.fixture(scope="module")
def internet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fake_internet.FakeInternet]:
    problem = fake_internet.problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI must run the egress tests: {problem}")
        pytest.skip(problem)
    net = fake_internet.start(tmp_path_factory.mktemp("internet"))
    yield net
    fake_internet.stop(net)


@pytest.fixture(scope="module")
def egress_server(docker_ready: None, internet: fake_internet.FakeInternet,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    import docker

    try:
        docker.from_env().images.get(GATEWAY_IMAGE)
    except docker.errors.ImageNotFound:
        message = f"{GATEWAY_IMAGE} is missing: selfbox images build egress-gateway"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("egress")
    live = start_server(directory, SELFBOX_EGRESS_MODE="open",
                        SELFBOX_EGRESS_UPSTREAM_DNS=internet.dns,
                        SELFBOX_EGRESS_GATEWAY_IMAGE=GATEWAY_IMAGE,
                        SELFBOX_EGRESS_CONFIG_DIR=str(directory / "config"),
                        SELFBOX_WARM_POOL_SIZE="0")
    tag = f"selfbox-egress-{live.env['SELFBOX_DEPLOYMENT']}"
    yield live
    stop_server(live)
    # The gateway took its host rules and network with it.
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    rules += subprocess.run(["iptables", "-S", "DOCKER-USER"], capture_output=True,
                            text=True).stdout
    assert tag not in rules, f"leftover host rules:\n{rules}"
    networks = docker.from_env().networks.list(names=[tag])
    assert not networks, "the egress network was left behind"


def create(client: httpx.Client, internet: fake_internet.FakeInternet,
           egress: dict[str, Any]) -> str:
    response = client.post("/v1/sandboxes", json={"memory_mb": 256, "egress": egress})
    assert response.status_code == 201, response.text
    sandbox: str = response.json()["id"]
    # The fake internet's CA, so HTTPS is verified end to end (no interception).
    run(client, sandbox, f"open('/home/user/ca.pem', 'w').write({internet.ca_pem!r})")
    return sandbox


def run(client: httpx.Client, sandbox: str, code: str) -> str:
    out = client.post(f"/v1/sandboxes/{sandbox}/execute", json={"code": PROBE + code}).json()
    assert out["status"] == "ok", out
    return str(out["stdout"])


def probe(client: httpx.Client, sandbox: str, url: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run(client, sandbox, f"print(json.dumps(probe({url!r})))"))
    return result


@pytest.fixture
def eclient(egress_server: LiveServer) -> Iterator[httpx.Client]:
    with egress_server.client() as http:
        yield http


POLICY = {"allow_out": ["api.allowed.test", "*.wild.test", "rebind.test", "meta.test",
                       "myhost.test"],
          "deny_out": ["0.0.0.0/0"]}


def test_allowed_names_are_reached_and_everything_else_refused(
        eclient: httpx.Client, internet: fake_internet.FakeInternet) -> None:
    sandbox = create(eclient, internet, POLICY)
    try:
        info = eclient.get(f"/v1/sandboxes/{sandbox}").json()
        assert info["network"] == "egress"
        assert info["egress"]["allow_out"] == POLICY["allow_out"]
        # Allowed: plain HTTP by Host, HTTPS by SNI with the real server's certificate.
        ok = probe(eclient, sandbox, "http://api.allowed.test/")
        assert ok["status"] == 200 and json.loads(ok["body"])["host"] == "api.allowed.test"
        tls = probe(eclient, sandbox, "https://api.allowed.test/")
        assert tls["status"] == 200, tls
        assert json.loads(tls["body"])["server"] == internet.ip("api.allowed.test")
        # Wildcards cover names below the suffix, not the suffix itself.
        assert probe(eclient, sandbox, "http://x.wild.test/")["status"] == 200
        apex = probe(eclient, sandbox, "http://wild.test/")
        assert apex["status"] == 403 and "not allowed" in apex["body"]
        # A name the policy does not allow: a clear refusal (HTTP), a closed TLS session.
        denied = probe(eclient, sandbox, "http://evil.test/")
        assert denied["status"] == 403
        assert "evil.test is not allowed by this sandbox's network policy" in denied["body"]
        assert "error" in probe(eclient, sandbox, "https://evil.test/")
        # One keep-alive connection, a permitted Host then a refused one: each request is
        # checked and routed on its own.
        two = json.loads(run(eclient, sandbox, """
import http.client
conn = http.client.HTTPConnection("api.allowed.test", 80, timeout=5)
answers = []
for host in ("api.allowed.test", "evil.test", "api.allowed.test"):
    conn.request("GET", "/", headers={"Host": host})
    r = conn.getresponse()
    answers.append([r.status, r.read().decode()])
print(json.dumps(answers))
"""))
        assert [a[0] for a in two] == [200, 403, 200], two
        assert json.loads(two[2][1])["server"] == internet.ip("api.allowed.test")
        # SNI of an allowed name, Host of a refused one inside TLS: the connection goes where
        # the SNI's name resolves (the gateway resolves it), never to the Host's.
        fronted = json.loads(run(eclient, sandbox, """
import http.client, ssl
ctx = ssl.create_default_context(cafile="/home/user/ca.pem")
conn = http.client.HTTPSConnection("api.allowed.test", 443, timeout=5, context=ctx)
conn.request("GET", "/", headers={"Host": "evil.test"})
print(conn.getresponse().read().decode())
"""))
        assert fronted["server"] == internet.ip("api.allowed.test")
        assert fronted["host"] == "evil.test"
        # Names that resolve to private or metadata addresses (rebinding): refused.
        for name in ("rebind.test", "meta.test", "myhost.test"):
            refused = probe(eclient, sandbox, f"http://{name}/")
            assert refused["status"] == 403, refused
            assert "private or reserved address" in refused["body"]
        # IP literals (even of an allowed host), metadata, RFC 1918: nothing to route to.
        for url in (f"http://{internet.ip('evil.test')}/", f"http://{internet.ip('x.wild.test')}/",
                    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
                    "http://192.168.1.1/"):
            result = probe(eclient, sandbox, url)
            assert "error" in result, (url, result)
        # The host (where the server and the Docker API live): only the gateway's ports.
        gateway = run(eclient, sandbox, "import socket; print(socket.gethostbyname('x.y'))")
        server_port = eclient.base_url.port
        result = probe(eclient, sandbox, f"http://{gateway.strip()}:{server_port}/healthz")
        assert "error" in result and "refused" in result["error"].lower(), result
    finally:
        eclient.delete(f"/v1/sandboxes/{sandbox}")


def test_another_sandbox_is_unreachable(eclient: httpx.Client,
                                        internet: fake_internet.FakeInternet) -> None:
    target = create(eclient, internet, {})
    other = create(eclient, internet, {})
    try:
        address = run(eclient, target, '''
import socket, subprocess, sys
subprocess.Popen([sys.executable, "-m", "http.server", "8000"], start_new_session=True,
                 stderr=subprocess.DEVNULL)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(("203.0.113.1", 53))
print(s.getsockname()[0])
''').strip()
        run(eclient, target, '''
import socket, time
for _ in range(50):
    try:
        socket.create_connection(("127.0.0.1", 8000), 1).close(); break
    except OSError: time.sleep(0.1)
''')
        result = probe(eclient, other, f"http://{address}:8000/")
        assert "error" in result, result
        # ... while the policy-open sandbox still reaches the (fake) internet by name.
        assert probe(eclient, other, "http://evil.test/")["status"] == 200
    finally:
        eclient.delete(f"/v1/sandboxes/{target}")
        eclient.delete(f"/v1/sandboxes/{other}")


def test_a_live_update_applies_to_the_next_connection(
        eclient: httpx.Client, internet: fake_internet.FakeInternet) -> None:
    sandbox = create(eclient, internet, POLICY)
    try:
        assert probe(eclient, sandbox, "http://evil.test/")["status"] == 403
        updated = eclient.put(f"/v1/sandboxes/{sandbox}/egress",
                              json={"allow_out": ["evil.test"], "deny_out": ["0.0.0.0/0"]})
        assert updated.status_code == 200, updated.text
        assert updated.json()["egress"]["allow_out"] == ["evil.test"]
        # The update is in effect when the call returns: the very next request follows it.
        assert probe(eclient, sandbox, "http://evil.test/")["status"] == 200
        assert probe(eclient, sandbox, "http://api.allowed.test/")["status"] == 403
        # Back again.
        eclient.put(f"/v1/sandboxes/{sandbox}/egress", json=POLICY)
        assert probe(eclient, sandbox, "http://evil.test/")["status"] == 403
        assert probe(eclient, sandbox, "http://api.allowed.test/")["status"] == 200
        # A bad update is refused and changes nothing.
        bad = eclient.put(f"/v1/sandboxes/{sandbox}/egress", json={"deny_out": ["evil.test"]})
        assert bad.status_code == 422 and "only supported in allow_out" in bad.text
        assert probe(eclient, sandbox, "http://api.allowed.test/")["status"] == 200
    finally:
        eclient.delete(f"/v1/sandboxes/{sandbox}")


def test_cidr_rules_apply_to_the_address_a_name_resolves_to(
        eclient: httpx.Client, internet: fake_internet.FakeInternet) -> None:
    evil = internet.ip("evil.test")
    sandbox = create(eclient, internet, {"allow_out": [f"{evil}/32"],
                                         "deny_out": ["0.0.0.0/0"]})
    try:
        assert probe(eclient, sandbox, "http://evil.test/")["status"] == 200  # by address
        assert probe(eclient, sandbox, "http://api.allowed.test/")["status"] == 403
        # A partial deny: everything public but that one network.
        eclient.put(f"/v1/sandboxes/{sandbox}/egress",
                    json={"deny_out": [f"{evil}/32"]})
        assert probe(eclient, sandbox, "http://evil.test/")["status"] == 403
        assert "error" in probe(eclient, sandbox, "https://evil.test/")
        assert probe(eclient, sandbox, "http://api.allowed.test/")["status"] == 200
        # allow_out wins over deny_out (E2B), by name or by address.
        eclient.put(f"/v1/sandboxes/{sandbox}/egress",
                    json={"allow_out": ["evil.test"], "deny_out": [f"{internet.prefix}.0/24"]})
        assert probe(eclient, sandbox, "http://evil.test/")["status"] == 200
        assert probe(eclient, sandbox, "http://api.allowed.test/")["status"] == 403
    finally:
        eclient.delete(f"/v1/sandboxes/{sandbox}")


def test_header_rules_add_a_secret_the_sandbox_never_sees(
        eclient: httpx.Client, internet: fake_internet.FakeInternet) -> None:
    secret = "Bearer s3cr3t-from-the-operator"
    sandbox = create(eclient, internet, {
        "allow_out": ["api.allowed.test"], "deny_out": ["0.0.0.0/0"],
        "rules": {"api.allowed.test": [{"transform": {"headers": {"Authorization": secret}}}]},
    })
    try:
        seen = json.loads(probe(eclient, sandbox, "http://api.allowed.test/")["body"])
        assert seen["headers"]["authorization"] == secret
        info = eclient.get(f"/v1/sandboxes/{sandbox}").json()
        assert secret not in json.dumps(info)  # shown masked, never in clear
        env = run(eclient, sandbox, "import os; print(dict(os.environ))")
        assert "s3cr3t" not in env
        # HTTPS is not intercepted: no header can be added there (docs/network.md).
        tls = json.loads(probe(eclient, sandbox, "https://api.allowed.test/")["body"])
        assert "authorization" not in tls["headers"]
        eclient.put(f"/v1/sandboxes/{sandbox}/egress",
                    json={"allow_out": ["api.allowed.test"], "deny_out": ["0.0.0.0/0"]})
        seen = json.loads(probe(eclient, sandbox, "http://api.allowed.test/")["body"])
        assert "authorization" not in seen["headers"]
    finally:
        eclient.delete(f"/v1/sandboxes/{sandbox}")


def test_unmodified_e2b_sdk_network_and_update_network(
        egress_server: LiveServer, internet: fake_internet.FakeInternet,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from e2b_code_interpreter import ALL_TRAFFIC, Sandbox

    monkeypatch.setenv("E2B_API_URL", egress_server.url)
    monkeypatch.setenv("E2B_SANDBOX_URL", egress_server.url)
    monkeypatch.setenv("E2B_API_KEY", API_KEYS[0])
    sbx = Sandbox.create(network={"allow_out": ["api.allowed.test"], "deny_out": [ALL_TRAFFIC]})
    try:
        fetch = ("python3 -c \"import urllib.request,sys\n"
                 "try: print(urllib.request.urlopen(sys.argv[1], timeout=5).status)\n"
                 "except Exception as e: print(getattr(e, 'code', 'error'))\" ")
        assert sbx.commands.run(fetch + "http://api.allowed.test/").stdout.strip() == "200"
        assert sbx.commands.run(fetch + "http://evil.test/").stdout.strip() == "403"
        info = sbx.get_info()
        assert info.network is not None
        assert info.network["allow_out"] == ["api.allowed.test"]
        assert info.network["deny_out"] == [ALL_TRAFFIC]
        sbx.update_network({"allow_out": ["evil.test"], "deny_out": [ALL_TRAFFIC]})
        assert sbx.commands.run(fetch + "http://evil.test/").stdout.strip() == "200"
        assert sbx.commands.run(fetch + "http://api.allowed.test/").stdout.strip() == "403"
        result = sbx.run_code("1 + 1")
        assert result.text == "2"
    finally:
        sbx.kill()


def test_without_egress_mode_a_policy_is_refused(client: httpx.Client) -> None:
    response = client.post("/v1/sandboxes", json={"egress": {"allow_out": ["pypi.org"]}})
    assert response.status_code == 422
    assert "SELFBOX_EGRESS_MODE" in response.json()["message"]
    # ... and network=none sandboxes cannot be given one later.
    created = client.post("/v1/sandboxes", json={"memory_mb": 256}).json()["id"]
    try:
        update = client.put(f"/v1/sandboxes/{created}/egress", json={"allow_out": ["x.org"]})
        assert update.status_code == 422
    finally:
        client.delete(f"/v1/sandboxes/{created}")




def test_operator_allow_list_bounds_every_policy(
        internet: fake_internet.FakeInternet, egress_server: LiveServer,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("egress-allow-list")
    live = start_server(directory, SELFBOX_EGRESS_MODE="allow-list",
                        SELFBOX_EGRESS_OPERATOR_ALLOW="api.allowed.test,*.wild.test",
                        SELFBOX_EGRESS_UPSTREAM_DNS=internet.dns,
                        SELFBOX_EGRESS_GATEWAY_IMAGE=GATEWAY_IMAGE,
                        SELFBOX_EGRESS_CONFIG_DIR=str(directory / "config"),
                        SELFBOX_WARM_POOL_SIZE="0")
    try:
        with live.client() as http:
            sandbox = create(http, internet, {})  # the sandbox itself allows everything
            assert probe(http, sandbox, "http://api.allowed.test/")["status"] == 200
            assert probe(http, sandbox, "http://x.wild.test/")["status"] == 200
            refused = probe(http, sandbox, "http://evil.test/")
            assert refused["status"] == 403
            assert "not on this server's allow list" in refused["body"]
            assert "error" in probe(http, sandbox, "https://evil.test/")
            assert probe(http, sandbox, "https://api.allowed.test/")["status"] == 200
    finally:
        stop_server(live)
    tag = f"selfbox-egress-{live.env['SELFBOX_DEPLOYMENT']}"
    assert tag not in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout


TCP_PROBE = r'''
import socket
def tcp(ip, port, timeout=3):
    try:
        with socket.create_connection((ip, port), timeout) as s:
            s.sendall(b"hi\n")
            return s.makefile("rb").readline().decode().strip()
    except OSError as e:
        return f"error: {type(e).__name__}: {e}"
'''


def tcp(client: httpx.Client, sandbox: str, ip: str) -> str:
    code = TCP_PROBE + f"print(tcp({ip!r}, {fake_internet.ECHO_PORT}))"
    return run(client, sandbox, code).strip()


def test_direct_tcp_by_address_follows_allow_out_cidrs(
        eclient: httpx.Client, internet: fake_internet.FakeInternet) -> None:
    evil, api = internet.ip("evil.test"), internet.ip("api.allowed.test")
    sandbox = create(eclient, internet, {"allow_out": [f"{evil}/32"],
                                         "deny_out": ["0.0.0.0/0"]})
    try:
        # Any port of an allowed address, by IP literal; a name still goes to the gateway.
        assert tcp(eclient, sandbox, evil) == "echo hi"
        assert tcp(eclient, sandbox, api).startswith("error"), "not in allow_out"
        # A live update: in effect for the next connection when the call returns.
        updated = eclient.put(f"/v1/sandboxes/{sandbox}/egress",
                              json={"allow_out": [f"{api}/32"],
                                    "deny_out": ["0.0.0.0/0"]})
        assert updated.status_code == 200, updated.text
        assert tcp(eclient, sandbox, api) == "echo hi"
        assert tcp(eclient, sandbox, evil).startswith("error")
        # The E2B route changes the same rules.
        e2b = eclient.put(f"/sandboxes/{sandbox}/network",
                          headers={"X-API-Key": API_KEYS[0]},
                          json={"allowOut": [evil], "denyOut": ["0.0.0.0/0"]})
        assert e2b.status_code in (200, 204), e2b.text
        assert tcp(eclient, sandbox, evil) == "echo hi"
        assert tcp(eclient, sandbox, api).startswith("error")
        # The hard deny list applies whatever the sandbox allows (the host itself reaches
        # that address: the fake internet's echo server answers there).
        eclient.put(f"/v1/sandboxes/{sandbox}/egress",
                    json={"allow_out": ["0.0.0.0/0", "198.18.0.0/15", internet.reserved]})
        assert tcp(eclient, sandbox, evil) == "echo hi"
        assert tcp(eclient, sandbox, internet.reserved).startswith("error")
        # No allow_out (the open default) opens names through the gateway, not raw TCP.
        eclient.put(f"/v1/sandboxes/{sandbox}/egress", json={})
        assert tcp(eclient, sandbox, evil).startswith("error")
        assert probe(eclient, sandbox, "http://evil.test/")["status"] == 200
    finally:
        eclient.delete(f"/v1/sandboxes/{sandbox}")


def test_an_external_gateway_is_configured_not_started(
        internet: fake_internet.FakeInternet, egress_server: LiveServer,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """SELFBOX_EGRESS_GATEWAY=external (what compose runs): the deployment starts the gateway,
    waiting for the server's configuration; the server never creates it."""
    import docker

    directory = tmp_path_factory.mktemp("egress-external")
    config = directory / "config"
    config.mkdir(mode=0o700)
    env = {"SELFBOX_EGRESS_MODE": "open", "SELFBOX_EGRESS_GATEWAY": "external",
           "SELFBOX_EGRESS_UPSTREAM_DNS": internet.dns,
           "SELFBOX_EGRESS_GATEWAY_IMAGE": "selfbox/never-pulled:none",
           "SELFBOX_EGRESS_CONFIG_DIR": str(config), "SELFBOX_WARM_POOL_SIZE": "0"}
    live = start_server(directory, **env)
    tag = f"selfbox-egress-{live.env['SELFBOX_DEPLOYMENT']}"
    engine = docker.from_env()
    # The compose service's settings (compose.yaml): waits for "ready" as long as it takes.
    gateway = engine.containers.run(
        GATEWAY_IMAGE, detach=True, name=f"{tag}-external", network_mode="host", init=True,
        cap_drop=["ALL"], cap_add=["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE", "SETUID",
                                   "SETGID"],
        security_opt=["no-new-privileges:true"], read_only=True,
        volumes={str(config): {"bind": str(config), "mode": "rw"}},
        environment={"SELFBOX_EGRESS_DIR": str(config / live.env["SELFBOX_DEPLOYMENT"]),
                     "SELFBOX_EGRESS_EXTERNAL": "1"})
    try:
        with live.client() as http:
            sandbox = create(http, internet, {"allow_out": ["api.allowed.test"],
                                              "deny_out": ["0.0.0.0/0"]})
            assert probe(http, sandbox, "http://api.allowed.test/")["status"] == 200
            assert probe(http, sandbox, "http://evil.test/")["status"] == 403
        names = [c.name for c in engine.containers.list(
            filters={"label": f"io.selfbox.egress-gateway={live.env['SELFBOX_DEPLOYMENT']}"})]
        assert names == [], "the server started a gateway of its own"
        stop_server(live)
        # The server's configuration went away: the gateway removes its rules and exits
        # (its restart policy would bring it back, waiting again).
        assert gateway.wait(timeout=30)["StatusCode"] == 0, gateway.logs()[-2000:]
        assert tag not in subprocess.run(["iptables", "-S"], capture_output=True,
                                         text=True).stdout
    finally:
        stop_server(live)
        gateway.remove(force=True)
