"""The sandbox server's exceptions. Each carries its HTTP status and a stable error code as class
data; one handler (:mod:`sandbox_server.errors`) renders them all in one JSON shape.

Rooted at the library's base, :class:`executors.exceptions.SandboxError`::

    SandboxError
     └── ServerError (500)
          ├── Unauthorized (401)            no API key, or a wrong one
          ├── NotFound (404)                unknown sandbox, or another key's
          │    └── ContextNotFound (404)
          ├── SandboxGone (410)             the sandbox died or expired
          ├── Conflict (409)                e.g. a sandbox that is not running
          │    └── SandboxUnresponsive (409) its runner does not answer (pids exhausted...)
          ├── PayloadTooLarge (413)
          ├── InvalidRequest (422)          bad input
          │    └── LimitExceeded (422)      a limit beyond the server's maximum (names it)
          ├── TooManySandboxes (429)        a cap on live sandboxes (names it)
          ├── NotSupported (501)            a feature selfbox does not offer (names it)
          ├── EngineUnavailable (503)       the Docker engine cannot be reached
          └── SandboxStartError (500)       a container did not come up
"""

from __future__ import annotations

from executors.exceptions import SandboxError

__all__ = [
    "Conflict",
    "ContextNotFound",
    "EngineUnavailable",
    "InvalidRequest",
    "LimitExceeded",
    "NotFound",
    "NotSupported",
    "PayloadTooLarge",
    "SandboxError",
    "SandboxGone",
    "SandboxStartError",
    "SandboxUnresponsive",
    "ServerError",
    "TooManySandboxes",
    "Unauthorized",
]


class ServerError(SandboxError):
    status_code = 500
    error_code = "internal_error"


class Unauthorized(ServerError):
    status_code = 401
    error_code = "unauthorized"


class NotFound(ServerError):
    status_code = 404
    error_code = "not_found"


class ContextNotFound(NotFound):
    error_code = "context_not_found"


class SandboxGone(ServerError):
    status_code = 410
    error_code = "sandbox_gone"


class Conflict(ServerError):
    status_code = 409
    error_code = "conflict"


class SandboxUnresponsive(Conflict):
    """The sandbox's runner did not answer in time (its pids exhausted, its CPU starved):
    the sandbox's own state, not a server fault."""

    error_code = "sandbox_unresponsive"


class PayloadTooLarge(ServerError):
    status_code = 413
    error_code = "payload_too_large"


class InvalidRequest(ServerError):
    status_code = 422
    error_code = "invalid_request"


class LimitExceeded(InvalidRequest):
    error_code = "limit_exceeded"


class TooManySandboxes(ServerError):
    status_code = 429
    error_code = "too_many_sandboxes"


class NotSupported(ServerError):
    status_code = 501
    error_code = "not_supported"


class EngineUnavailable(ServerError):
    status_code = 503
    error_code = "engine_unavailable"


class SandboxStartError(ServerError):
    status_code = 500
    error_code = "sandbox_start_failed"
