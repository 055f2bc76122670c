"""The E2B adapter's view of the runner gateway: the server's typed errors as Connect codes.

The gateway has already translated every failure once (a closed channel, a timeout, the
runner's :class:`~sandbox_server.runner.protocol.ErrorCode`); this module only renders those
types the way envd does, from the tables below.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Final

from ..exceptions import (
    Conflict,
    RunnerOpError,
    SandboxGone,
    SandboxUnresponsive,
    ServerError,
    StreamOverflow,
)
from ..manager import SandboxManager
from ..runner.protocol import ErrorCode, Op
from ..sandbox import Sandbox
from .connect import ConnectError

__all__ = ["call_op", "connect_errors", "http_status"]

# The runner's error code -> envd's Connect code.
CONNECT_CODE: Final[dict[ErrorCode, str]] = {
    ErrorCode.NOT_FOUND: "not_found",
    ErrorCode.ALREADY_EXISTS: "already_exists",
    ErrorCode.PERMISSION_DENIED: "permission_denied",
    ErrorCode.INVALID_ARGUMENT: "invalid_argument",
    ErrorCode.NO_SPACE: "resource_exhausted",
    ErrorCode.LIMIT_REACHED: "resource_exhausted",
    ErrorCode.NOT_WRITABLE: "failed_precondition",
    ErrorCode.BUSY: "aborted",
    # The runner shares its process with user code: whatever it fails on is the sandbox's
    # doing, answered as a refusal, never as envd's own fault.
    ErrorCode.INTERNAL: "aborted",
}


class RunnerConnectError(ConnectError):
    """A ConnectError that still knows the runner's code (a full disk has its own status)."""

    def __init__(self, exc: RunnerOpError) -> None:
        super().__init__(CONNECT_CODE.get(exc.code, "aborted"), exc.message)
        self.runner_code = exc.code


def to_connect(exc: ServerError, sandbox: Sandbox) -> ConnectError:
    """A server error from the gateway as envd's Connect error."""
    if isinstance(exc, RunnerOpError):
        return RunnerConnectError(exc)
    if isinstance(exc, SandboxGone):
        return ConnectError("unavailable", f"sandbox {sandbox.id} was not found")
    if isinstance(exc, SandboxUnresponsive):  # RunnerTimeout too: the sandbox's own state
        return ConnectError("aborted", exc.message or str(exc))
    if isinstance(exc, Conflict):
        return ConnectError("failed_precondition", exc.message or str(exc))
    if isinstance(exc, StreamOverflow):
        return ConnectError("resource_exhausted", exc.message or str(exc))
    return ConnectError("internal", exc.message or str(exc))


@contextlib.contextmanager
def connect_errors(sandbox: Sandbox) -> Iterator[None]:
    """Re-raise the gateway's typed errors as Connect errors."""
    try:
        yield
    except ServerError as exc:
        raise to_connect(exc, sandbox) from exc


async def call_op(manager: SandboxManager, sandbox: Sandbox, op: Op,
                  timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
    """Run one runner op; its reply on success, else :class:`ConnectError`."""
    with connect_errors(sandbox):
        return await manager.gateway.request(sandbox, op, timeout_s=timeout_s, **fields)


def http_status(error: ConnectError) -> int:
    """The status of an envd plain-HTTP endpoint (/files) for a failed op."""
    if isinstance(error, RunnerConnectError) and error.runner_code is ErrorCode.NO_SPACE:
        return 507  # the SDK's NotEnoughSpaceException
    if error.code == "unavailable":
        return 502
    return error.http_status
