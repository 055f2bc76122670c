"""Calling the runner's envd ops, with their failures mapped to Connect codes.

The runner reports a failed op as ``{"ok": false, "error": {"name": <exception class>, ...}}``;
the exception class says what went wrong (a missing file, an existing one, ...).
"""

from __future__ import annotations

import errno as errnos
from typing import Any

from ..exceptions import Conflict, SandboxGone, SandboxUnresponsive, ServerError
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
    "ResourceExhausted": "resource_exhausted",  # the runner could not start a thread (pids)
}

# An OSError's errno says what went wrong whatever its class (EROFS is a plain OSError).
_ERRNO_CODES = {
    errnos.ENOENT: "not_found",
    errnos.EEXIST: "already_exists",
    errnos.EACCES: "permission_denied",
    errnos.EPERM: "permission_denied",
    errnos.EROFS: "permission_denied",
    errnos.ENOSPC: "resource_exhausted",
    errnos.EDQUOT: "resource_exhausted",
    errnos.EMFILE: "resource_exhausted",
    errnos.ENFILE: "resource_exhausted",
    errnos.ENOMEM: "resource_exhausted",
    errnos.EAGAIN: "resource_exhausted",
    errnos.ENOTDIR: "invalid_argument",
    errnos.EISDIR: "invalid_argument",
    errnos.EINVAL: "invalid_argument",
    errnos.ENAMETOOLONG: "invalid_argument",
    errnos.ELOOP: "invalid_argument",
    errnos.EXDEV: "invalid_argument",
    errnos.ENOTEMPTY: "failed_precondition",
    errnos.EBUSY: "failed_precondition",
    errnos.ETXTBSY: "failed_precondition",
    errnos.EFBIG: "resource_exhausted",
}


async def call_op(manager: SandboxManager, sandbox: Sandbox, op: str,
                  timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
    """Run one runner op; its reply on success, else :class:`ConnectError`."""
    try:
        reply = await manager.request(sandbox, op, timeout_s=timeout_s, **fields)
    except SandboxGone as exc:
        raise ConnectError("unavailable", f"sandbox {sandbox.id} was not found") from exc
    except SandboxUnresponsive as exc:
        raise ConnectError("aborted", str(exc)) from exc
    except Conflict as exc:
        raise ConnectError("failed_precondition", str(exc)) from exc
    except ServerError as exc:
        raise ConnectError("internal", str(exc)) from exc
    if reply.get("ok"):
        return reply
    raw = reply.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    name, value = str(error.get("name", "Error")), str(error.get("value", "failed"))[:2000]
    number = error.get("errno")
    code = _ERRNO_CODES.get(number) if isinstance(number, int) else None
    # Whatever the sandbox raised is the sandbox's business: a class we do not know is a
    # refusal of the request, never a server fault.
    code = code or _CODES.get(name, "failed_precondition")
    raise ConnectError(code, value, no_space=number in (errnos.ENOSPC, errnos.EDQUOT))


def http_status(error: ConnectError) -> int:
    """The status of an envd plain-HTTP endpoint (/files) for a failed op."""
    if error.code == "resource_exhausted" and error.no_space:
        return 507  # the SDK's NotEnoughSpaceException
    if error.code == "unavailable":
        return 502
    return error.http_status
