"""Detecting a TLS-intercepting proxy before image builds, against a local TLS server whose
certificate a self-made CA signed (the "proxy"): certifi's store (what the base images ship)
rejects it, a bundle holding that CA (the "host's") accepts it."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from sandbox_server import buildhost
from sandbox_server.buildhost import Handshake, Interception
from tests.conftest import REPO_ROOT, free_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, and a certificate for localhost signed by it."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test CA (apt-get install openssl)")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=selfbox test proxy CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                               "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt", cwd=d)
    # The "host's bundle": the public roots plus the proxy's CA, as on an intercepted host.
    (d / "host-bundle.crt").write_text(Path(certifi.where()).read_text()
                                       + (d / "ca.crt").read_text())
    return d


@pytest.fixture(scope="module")
def tls_port(pki: Path) -> Iterator[int]:
    """A TLS server on 127.0.0.1 that completes handshakes and closes."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()  # the client refused our certificate: that is the point

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


def test_handshake_outcomes(pki: Path, tls_port: int) -> None:
    assert buildhost.handshake("localhost", tls_port, certifi.where()) is Handshake.UNTRUSTED
    assert buildhost.handshake("localhost", tls_port, str(pki / "host-bundle.crt")) \
        is Handshake.OK
    closed = free_port()
    assert buildhost.handshake("127.0.0.1", closed, certifi.where(), timeout_s=2) \
        is Handshake.UNREACHABLE


def test_intercepted_when_the_image_store_rejects_and_the_host_accepts(
        pki: Path, tls_port: int) -> None:
    def image_probe(host: str, port: int) -> Handshake:
        return buildhost.handshake(host, port, certifi.where())

    verdict = buildhost.detect_interception("localhost", tls_port, str(pki / "host-bundle.crt"),
                                            image_probe)
    assert verdict is Interception.INTERCEPTED


def test_direct_when_the_image_store_accepts(pki: Path, tls_port: int) -> None:
    # No proxy: the index's certificate chains to a root the image already trusts.
    def image_probe(host: str, port: int) -> Handshake:
        return buildhost.handshake(host, port, str(pki / "ca.crt"))

    verdict = buildhost.detect_interception("localhost", tls_port, str(pki / "host-bundle.crt"),
                                            image_probe)
    assert verdict is Interception.DIRECT


def test_unknown_when_nothing_answers_or_both_reject() -> None:
    assert buildhost.classify(Handshake.UNREACHABLE, Handshake.OK) is Interception.UNKNOWN
    assert buildhost.classify(Handshake.UNTRUSTED, Handshake.UNTRUSTED) is Interception.UNKNOWN
    assert buildhost.classify(Handshake.UNTRUSTED, Handshake.UNREACHABLE) \
        is Interception.UNKNOWN


def test_decide_trust_detects_and_says_so_once(
        pki: Path, tls_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SELFBOX_TRUST_HOST_CA", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", f"https://localhost:{tls_port}/simple")
    logged: list[str] = []
    bundle = pki / "host-bundle.crt"

    def certifi_probe(host: str, port: int) -> Handshake:
        return buildhost.handshake(host, port, certifi.where())

    plan = buildhost.decide_trust("base:x", logged.append, image_probe=certifi_probe,
                                  bundle=bundle)
    assert plan.trust_host_ca and plan.host_ca_bundle == bundle
    assert len(logged) == 1 and "intercepted" in logged[0] and str(bundle) in logged[0]
    assert "SELFBOX_TRUST_HOST_CA=0" in logged[0]

    def trusting_probe(host: str, port: int) -> Handshake:
        return buildhost.handshake(host, port, str(pki / "ca.crt"))

    logged.clear()
    plan = buildhost.decide_trust("base:x", logged.append, image_probe=trusting_probe,
                                  bundle=bundle)
    assert not plan.trust_host_ca and plan.host_ca_bundle is None and logged == []


def test_the_explicit_setting_overrides_the_detection(
        pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_probe(host: str, port: int) -> Handshake:
        raise AssertionError("an explicit setting must not probe")

    bundle = pki / "host-bundle.crt"
    monkeypatch.setenv("SELFBOX_TRUST_HOST_CA", "0")
    plan = buildhost.decide_trust("b", print, image_probe=must_not_probe, bundle=bundle)
    assert not plan.trust_host_ca
    monkeypatch.setenv("SELFBOX_TRUST_HOST_CA", "1")
    plan = buildhost.decide_trust("b", print, image_probe=must_not_probe, bundle=bundle)
    assert plan.trust_host_ca and plan.host_ca_bundle == bundle
    # The command-line flag wins over the environment.
    plan = buildhost.decide_trust("b", print, override=False, image_probe=must_not_probe,
                                  bundle=bundle)
    assert not plan.trust_host_ca


def test_the_probe_runs_as_a_plain_script(pki: Path, tls_port: int) -> None:
    # How the base image's python3 and scripts/compose-setup.sh run it: no package, no venv.
    script = REPO_ROOT / "sandbox_server" / "buildhost.py"
    answers = [
        subprocess.run([sys.executable, "-I", "-", "handshake", "localhost", str(tls_port),
                        "--cafile", cafile], input=script.read_bytes(), capture_output=True,
                       timeout=60, check=True).stdout.decode().strip()
        for cafile in (certifi.where(), str(pki / "host-bundle.crt"))
    ]
    assert answers == ["untrusted", "ok"]
    # How the image probe runs: with the store pip uses (its certifi), which lacks the test CA.
    pip_store = subprocess.run([sys.executable, "-I", "-", "handshake", "localhost",
                                str(tls_port), "--pip-store"], input=script.read_bytes(),
                               capture_output=True, timeout=60, check=True)
    assert pip_store.stdout.decode().strip() == "untrusted"


@pytest.mark.docker
def test_an_unpullable_base_names_local_base(docker_ready: None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox_server.cli", "images", "build", "runtime",
         "--base-image", "selfbox-test/no-such-base:never", "--no-trust-host-ca"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "could not be pulled" in result.stderr and "--local-base" in result.stderr
