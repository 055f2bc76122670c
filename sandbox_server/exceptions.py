"""The sandbox server's exceptions. Each carries a stable error code as class data, and the HTTP
status the one table (:data:`executors.http_status.HTTP_STATUS`, shared with the clients) gives
that code; one handler (:mod:`sandbox_server.errors`) renders them all in one JSON shape.

Rooted at the library's base, :class:`executors.exceptions.SandboxError`::

    SandboxError
     └── ServerError (500)
          ├── Unauthorized (401)            no API key, or a wrong one
          ├── NotFound (404)                unknown sandbox, or another key's
          │    └── ContextNotFound (404)
          ├── SandboxGone (410)             the sandbox died or expired
          ├── Conflict (409)                e.g. a sandbox that is not running
          │    └── SandboxUnresponsive (409) its runner cannot answer (pids exhausted...)
          │         └── RunnerTimeout (409)  ... or did not answer an op in time
          ├── PayloadTooLarge (413)
          ├── StreamOverflow (429)          a client reads a stream slower than it comes
          ├── InvalidRequest (422)          bad input
          │    └── LimitExceeded (422)      a limit beyond the server's maximum (names it)
          ├── TooManySandboxes (429)        a cap on live sandboxes (names it)
          ├── NotSupported (501)            a feature selfbox does not offer (names it)
          ├── EngineUnavailable (503)       the Docker engine cannot be reached
          ├── SandboxStartError (500)       a container did not come up
          └── RunnerOpError (409)           the runner failed an op; ``code`` says why
"""

from __future__ import annotations

from executors.exceptions import SandboxError

from .runner.protocol import ErrorCode

__all__ = [
    "Conflict",
    "ContextNotFound",
    "EngineUnavailable",
    "InvalidRequest",
    "LimitExceeded",
    "NotFound",
    "NotSupported",
    "PayloadTooLarge",
    "RunnerOpError",
    "RunnerTimeout",
    "SandboxError",
    "SandboxGone",
    "SandboxStartError",
    "SandboxUnresponsive",
    "ServerError",
    "StreamOverflow",
    "TooManySandboxes",
    "Unauthorized",
]


class ServerError(SandboxError):
    error_code = "internal_error"

    def http_headers(self) -> dict[str, str]:
        """Headers the error's response carries besides the JSON body."""
        return {}


class Unauthorized(ServerError):
    error_code = "unauthorized"


class NotFound(ServerError):
    error_code = "not_found"


class ContextNotFound(NotFound):
    error_code = "context_not_found"


class SandboxGone(ServerError):
    error_code = "sandbox_gone"


class Conflict(ServerError):
    error_code = "conflict"


class SandboxUnresponsive(Conflict):
    """The sandbox's runner did not answer in time (its pids exhausted, its CPU starved):
    the sandbox's own state, not a server fault."""

    error_code = "sandbox_unresponsive"


class PayloadTooLarge(ServerError):
    error_code = "payload_too_large"


class InvalidRequest(ServerError):
    error_code = "invalid_request"


class LimitExceeded(InvalidRequest):
    error_code = "limit_exceeded"


class TooManySandboxes(ServerError):
    """``retry_after_s``: waiting can help (a cap shared with others), so clients retry after
    that long; ``None``: only the caller can free a slot (its own cap), so retrying cannot help
    and the answer says ``Should-Retry: false`` (E2B's SDKs then do not retry)."""

    error_code = "too_many_sandboxes"

    def __init__(self, message: str = "", *, retry_after_s: int | None = None,
                 **details: object) -> None:
        super().__init__(message, **details)
        self.retry_after_s = retry_after_s

    def http_headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {"Should-Retry": "false"}
        return {"Retry-After": str(self.retry_after_s)}


class NotSupported(ServerError):
    error_code = "not_supported"


class EngineUnavailable(ServerError):
    error_code = "engine_unavailable"


class SandboxStartError(ServerError):
    error_code = "sandbox_start_failed"


class StreamOverflow(ServerError):
    error_code = "stream_overflow"
    server_fault = False


class RunnerTimeout(SandboxUnresponsive):
    """No answer in time: the sandbox's own state (its code holds every pid or its CPU)."""

    error_code = "runner_timeout"


class RunnerOpError(ServerError):
    """A runner op failed. ``code`` is the runner's :class:`~.runner.protocol.ErrorCode`:
    what callers branch on (never the message, which is the runner's own text)."""

    error_code = "runner_error"

    def __init__(self, message: str, *, code: ErrorCode, op: str, name: str = "") -> None:
        super().__init__(message, op=op, runner_code=str(code))
        self.code = code
        self.op = op
        self.name = name
