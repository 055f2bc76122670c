"""What the egress gateway costs: request latency through it vs direct, and create latency
with a policy vs without. Needs root, Docker, the runtime and egress-gateway images, and the
fake internet's tools (ip, nsenter, openssl, dnsmasq), like tests/server/test_egress.py.

    sudo .venv/bin/python benchmarks/bench_network.py [--requests N] [--creates N]

Requests are made from inside sandboxes (Python's urllib, a new connection each, to the same
HTTP server in a network namespace): one sandbox with network="bridge" connects straight to
the server's address; one with an egress policy goes by name through the gateway (DNS answer,
Host check, the gateway's own resolution, the relay). Same run, same server, same client code.
Create latency: POST /v1/sandboxes (warm pool off) until it answers, then DELETE.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import start_server, stop_server
from tests.server import fake_internet

TIMED = r'''
import json, time, urllib.request
samples = []
for _ in range({n} + 5):
    start = time.perf_counter()
    urllib.request.urlopen({url!r}, timeout=10).read()
    samples.append(time.perf_counter() - start)
print(json.dumps(samples[5:]))  # the first few warm caches up
'''


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--creates", type=int, default=10)
    args = parser.parse_args()
    problem = fake_internet.problem()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 2
    image = os.environ.get("SELFBOX_TEST_EGRESS_GATEWAY_IMAGE", "selfbox/egress-gateway:latest")
    with tempfile.TemporaryDirectory(prefix="bench-network-") as scratch:
        root = Path(scratch)
        net = fake_internet.start(root / "internet")
        server = None
        try:
            server = start_server(root, SELFBOX_EGRESS_MODE="open",
                                  SELFBOX_EGRESS_UPSTREAM_DNS=net.dns,
                                  SELFBOX_EGRESS_GATEWAY_IMAGE=image,
                                  SELFBOX_EGRESS_CONFIG_DIR=str(root / "egress"),
                                  SELFBOX_ALLOW_NETWORK="true", SELFBOX_WARM_POOL_SIZE="0")
            with server.client() as http:
                def create(body: dict[str, object]) -> tuple[str, float]:
                    start = time.perf_counter()
                    response = http.post("/v1/sandboxes", json={"memory_mb": 256, **body})
                    elapsed = time.perf_counter() - start
                    response.raise_for_status()
                    return str(response.json()["id"]), elapsed

                def timed(sandbox: str, url: str) -> list[float]:
                    code = TIMED.format(n=args.requests, url=url)
                    out = http.post(f"/v1/sandboxes/{sandbox}/execute",
                                    json={"code": code, "timeout_s": 600}).json()
                    if out["status"] != "ok":
                        raise RuntimeError(out)
                    return [float(x) for x in json.loads(out["stdout"])]

                policy = {"egress": {"allow_out": ["api.allowed.test"],
                                     "deny_out": ["0.0.0.0/0"]}}
                create(policy)  # starts the gateway once, outside the measurements
                direct_box, _ = create({"network": "bridge"})
                gateway_box, _ = create(policy)
                direct = timed(direct_box, f"http://{net.ip('api.allowed.test')}/")
                through = timed(gateway_box, "http://api.allowed.test/")

                plain, with_policy = [], []
                for _ in range(args.creates):
                    for body, bucket in (({}, plain), (policy, with_policy)):
                        sandbox, elapsed = create(body)
                        bucket.append(elapsed)
                        http.delete(f"/v1/sandboxes/{sandbox}")
        finally:
            if server is not None:
                stop_server(server)
            fake_internet.stop(net)

    def ms(value: float) -> str:
        return f"{value * 1000:.2f} ms"

    print(f"requests: {args.requests} per path (new connection each), creates: {args.creates}")
    print("| measurement | p50 | p95 |")
    print("|---|---|---|")
    print(f"| HTTP GET, direct (network=bridge) | {ms(percentile(direct, 0.5))} | "
          f"{ms(percentile(direct, 0.95))} |")
    print(f"| HTTP GET, through the egress gateway | {ms(percentile(through, 0.5))} | "
          f"{ms(percentile(through, 0.95))} |")
    print(f"| added by the gateway | "
          f"{ms(percentile(through, 0.5) - percentile(direct, 0.5))} | "
          f"{ms(percentile(through, 0.95) - percentile(direct, 0.95))} |")
    print(f"| create, network=none | {ms(statistics.median(plain))} | "
          f"{ms(percentile(plain, 0.95))} |")
    print(f"| create, with an egress policy | {ms(statistics.median(with_policy))} | "
          f"{ms(percentile(with_policy, 0.95))} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
