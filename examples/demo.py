"""The README demo: create a sandbox, run code twice (state is kept), show a result and an error,
kill it. Talks to a running selfbox server over plain HTTP.

    SELFBOX_URL=http://127.0.0.1:8000 SELFBOX_API_KEY=... python examples/demo.py
"""

from __future__ import annotations

import os
import sys

import httpx


def main() -> int:
    url = os.environ.get("SELFBOX_URL", "http://127.0.0.1:8000")
    key = os.environ.get("SELFBOX_API_KEY")
    if not key:
        print("set SELFBOX_API_KEY to one of the server's SELFBOX_API_KEYS", file=sys.stderr)
        return 2
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                      timeout=60) as http:
        created = http.post("/v1/sandboxes", json={"memory_mb": 256, "timeout_s": 120})
        created.raise_for_status()
        sandbox = created.json()
        print(f"created sandbox {sandbox['id']} (network={sandbox['network']}, "
              f"memory_mb={sandbox['memory_mb']}, cpu={sandbox['cpu']})")

        def run(code: str) -> dict:
            print(f"\n>>> {code.strip()}")
            response = http.post(f"/v1/sandboxes/{sandbox['id']}/execute", json={"code": code})
            response.raise_for_status()
            execution: dict = response.json()
            if execution["stdout"]:
                print(execution["stdout"], end="")
            for result in execution["results"]:
                print(f"result: {result['data']['text/plain']}")
            if execution["error"]:
                error = execution["error"]
                print(f"error: {error['name']}: {error['value']}")
            print(f"[status={execution['status']} in {execution['duration_s'] * 1000:.1f} ms]")
            return execution

        run("import platform, os\nx = 21\nprint('hello from', platform.python_version(), "
            "'as uid', os.getuid())")
        run("x * 2  # x was defined by the previous run")
        run("1 / 0")
        http.delete(f"/v1/sandboxes/{sandbox['id']}").raise_for_status()
        print(f"\nkilled sandbox {sandbox['id']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
