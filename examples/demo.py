"""The README demo: create a sandbox, run code twice (state is kept), show a result and an error,
kill it — with selfbox's ``docker`` executor, against a running selfbox server.

    SELFBOX_URL=http://127.0.0.1:8000 SELFBOX_API_KEY=... python examples/demo.py
"""

from __future__ import annotations

import os
import sys

from executors import Execution, create_executor


def show(code: str, execution: Execution) -> None:
    print(f"\n>>> {code.strip()}")
    if execution.stdout:
        print(execution.stdout, end="")
    if execution.text is not None:
        print(f"result: {execution.text}")
    if execution.error is not None:
        print(f"error: {execution.error.name}: {execution.error.value}")
    print(f"[status={execution.status}, {execution.duration_s * 1000:.1f} ms in the sandbox]")


def main() -> int:
    if not os.environ.get("SELFBOX_API_KEY"):
        print("set SELFBOX_API_KEY to one of the server's SELFBOX_API_KEYS", file=sys.stderr)
        return 2
    # base_url and api_key come from SELFBOX_URL and SELFBOX_API_KEY.
    with create_executor("docker", memory_mb=256, timeout_s=120) as sandbox:
        for code in (
            "import platform, os\nx = 21\n"
            "print('hello from Python', platform.python_version(), 'as uid', os.getuid())",
            "x * 2  # x was defined by the previous run",
            "1 / 0",
        ):
            show(code, sandbox.run(code))
        print(f"\nsandbox {sandbox.sandbox_id}: killing it")  # type: ignore[attr-defined]
    print("killed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
