"""A fake internet for egress tests: a network namespace with HTTP and HTTPS servers under their
own names, and a DNS server (dnsmasq) that knows them. Addresses exist only in that namespace
and on the host's end of its veth; everything is removed by name and PID afterwards.

Needs root, ``ip``, ``nsenter``, ``openssl`` and ``dnsmasq`` (scripts/test.sh installs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# One HTTP/HTTPS server: answers JSON with the Host it was asked for and the headers it got.
SERVER = r'''
import http.server, json, socketserver, ssl, sys
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):  # no reverse DNS look-up (HTTPServer's getfqdn): no DNS here
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"server": sys.argv[1], "host": self.headers.get("host"),
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
if sys.argv[1] == "echo":  # a plain TCP echo server on every address of the namespace
    class Line(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"echo " + self.rfile.readline(1024))
    socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[2])), Line).serve_forever()
address, port = sys.argv[1], int(sys.argv[2])
server = Server((address, port), Echo)
if len(sys.argv) > 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
'''

ECHO_PORT = 7007  # a TCP echo server on every address (not HTTP, not 80/443)


@dataclass
class FakeInternet:
    name: str
    prefix: str  # "11.N.0"
    reserved: str  # an address of the namespace in a hard-denied range (198.18.N.7)
    directory: Path
    names: dict[str, str]
    pids: list[int] = field(default_factory=list)

    @property
    def dns(self) -> str:
        return f"{self.prefix}.2"

    def ip(self, name: str) -> str:
        return self.names[name]

    @property
    def ca_pem(self) -> str:
        return (self.directory / "cert.pem").read_text()


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def _in_ns(name: str, *args: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{name}", *args]


def problem() -> str | None:
    """Why a fake internet cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth)"
    missing = [tool for tool in ("ip", "nsenter", "openssl", "dnsmasq") if not shutil.which(tool)]
    return f"missing tools: {missing} (scripts/test.sh installs them)" if missing else None


def start(directory: Path) -> FakeInternet:
    tag = os.getpid() % 100_000
    name = f"sbx-inet-{tag}"
    prefix = f"11.{tag % 200 + 20}.0"
    host_if, ns_if = f"sbi{tag}h", f"sbi{tag}n"
    directory.mkdir(parents=True, exist_ok=True)
    names = {
        "api.allowed.test": f"{prefix}.10",
        "x.wild.test": f"{prefix}.10",
        "wild.test": f"{prefix}.10",
        "evil.test": f"{prefix}.11",
        "rebind.test": "10.99.0.1",
        "meta.test": "169.254.169.254",
        "myhost.test": f"{prefix}.1",  # the host's own (public-looking) address
    }
    reserved = f"198.18.{tag % 200 + 20}.7"
    net = FakeInternet(name, prefix, reserved, directory, names)
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", name)
        _run("ip", "addr", "add", f"{prefix}.1/24", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        for address in (".2", ".10", ".11"):
            _run(*_in_ns(name, "ip", "addr", "add", f"{prefix}{address}/24", "dev", ns_if))
        _run(*_in_ns(name, "ip", "addr", "add", f"{reserved}/32", "dev", ns_if))
        _run(*_in_ns(name, "ip", "link", "set", ns_if, "up"))
        _run(*_in_ns(name, "ip", "link", "set", "lo", "up"))
        _run(*_in_ns(name, "ip", "route", "add", "default", "via", f"{prefix}.1"))
        _run("ip", "route", "add", f"{reserved}/32", "via", f"{prefix}.2", "dev", host_if)
        _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"),
             "-subj", "/CN=api.allowed.test",
             "-addext", "subjectAltName=DNS:api.allowed.test,DNS:evil.test")
        script = directory / "server.py"
        script.write_text(SERVER)
        log = open(directory / "servers.log", "ab")  # noqa: SIM115 (lives as long as they do)
        dns = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
               f"--listen-address={prefix}.2", "--bind-interfaces", "--pid-file=",
               "--user=root", "--group=root"]
        dns += [f"--address=/{host}/{ip}" for host, ip in names.items()]
        commands = [dns]
        for address in (".10", ".11"):
            commands.append([sys.executable, str(script), f"{prefix}{address}", "80"])
        commands.append([sys.executable, str(script), f"{prefix}.10", "443",
                         str(directory / "cert.pem"), str(directory / "key.pem")])
        commands.append([sys.executable, str(script), "echo", str(ECHO_PORT)])
        for command in commands:
            process = subprocess.Popen(_in_ns(name, *command), stdout=log, stderr=log,
                                       stdin=subprocess.DEVNULL)
            net.pids.append(process.pid)
        _wait_listening(f"{prefix}.10", 80)
        _wait_listening(f"{prefix}.10", 443)
        _wait_listening(f"{prefix}.11", 80)
        _wait_listening(reserved, ECHO_PORT)
    except BaseException:
        stop(net)
        raise
    return net


def _wait_listening(address: str, port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"fake internet server {address}:{port} did not come up")


def stop(net: FakeInternet) -> None:
    tag = net.name.rsplit("-", 1)[1]
    for pid in net.pids:
        try:
            os.kill(pid, 15)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    subprocess.run(["ip", "link", "del", f"sbi{tag}h"], capture_output=True, timeout=30)
    subprocess.run(["ip", "netns", "del", net.name], capture_output=True, timeout=30)
