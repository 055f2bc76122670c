"""Calling the runner's envd ops, with their failures mapped to Connect codes.

The runner reports a failed op as ``{"ok": false, "error": {"name": <exception class>, ...}}``;
the exception class says what went wrong (a missing file, an existing one, ...).
"""

from __future__ import annotations

from typing import Any

from ..exceptions import Conflict, SandboxGone, ServerError
from ..manager import SandboxManager
from ..sandbox import Sandbox
from .connect import ConnectError

__all__ = ["call_op", "http_status"]

_CODES = {
    "FileNotFoundError": "not_found",
    "ProcessLookupError": "not_found",
    "KeyError": "not_found",
    "FileExistsError": "already_exists",
    "PermissionError": "permission_denied",
    "NotADirectoryError": "invalid_argument",
    "IsADirectoryError": "invalid_argument",
    "ValueError": "invalid_argument",
    "TypeError": "invalid_argument",
    "Error": "invalid_argument",  # binascii.Error: bad base64
    "OverflowError": "resource_exhausted",
    "BrokenPipeError": "failed_precondition",
}


async def call_op(manager: SandboxManager, sandbox: Sandbox, op: str, timeout_s: float = 30.0,
                  **fields: Any) -> dict[str, Any]:
    """Run one runner op; its reply on success, else :class:`ConnectError`."""
    try:
        reply = await manager.request(sandbox, op, timeout_s=timeout_s, **fields)
    except SandboxGone as exc:
        raise ConnectError("unavailable", f"sandbox {sandbox.id} was not found") from exc
    except Conflict as exc:
        raise ConnectError("failed_precondition", str(exc)) from exc
    except ServerError as exc:
        raise ConnectError("deadline_exceeded" if "did not answer" in str(exc) else "internal",
                           str(exc)) from exc
    if reply.get("ok"):
        return reply
    raw = reply.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    name, value = str(error.get("name", "Error")), str(error.get("value", "failed"))[:2000]
    code = _CODES.get(name, "internal")
    if "No space left" in value or "Disk quota" in value:
        code = "resource_exhausted"
    raise ConnectError(code, value)


def http_status(error: ConnectError) -> int:
    """The status of an envd plain-HTTP endpoint (/files) for a failed op."""
    if error.code == "resource_exhausted" and "No space" in error.message:
        return 507  # the SDK's NotEnoughSpaceException
    if error.code == "unavailable":
        return 502
    return error.http_status
