"""The exceptions of selfbox's executor library.

Every exception that selfbox raises derives from :class:`SandboxError`. Errors *in user code*
are not raised: they are data, in :attr:`executors.Execution.error`. What is raised is a failure
of the infrastructure or of the caller's request::

    SandboxError
     ├── ConfigurationError          bad executor_type, bad argument, missing optional extra
     │    └── MissingDependencyError  an optional SDK is not installed (names the extra)
     ├── ExecutorClosedError         the executor was used after close()
     ├── SandboxConnectionError      the sandbox server (or E2B) cannot be reached
     ├── AuthenticationError         401: no API key or a wrong one
     ├── SandboxNotFoundError        404: unknown sandbox (or another key's)
     ├── SandboxGoneError            410: the sandbox died or expired; its state is lost
     ├── InvalidRequestError         other 4xx: a limit beyond the server's maximum, bad input
     ├── RateLimitError              429: a cap on live sandboxes was hit
     ├── ToolError                   a tool could not be sent, or a tool call could not cross
     └── ServerError                 5xx or a malformed answer from the server

The server package roots its own tree at the same base class.
"""

from __future__ import annotations

from typing import Any

from .http_status import HTTP_STATUS

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ExecutorClosedError",
    "InvalidRequestError",
    "MissingDependencyError",
    "RateLimitError",
    "SandboxConnectionError",
    "SandboxError",
    "SandboxGoneError",
    "SandboxNotFoundError",
    "ServerError",
    "ToolError",
    "exception_for_status",
]


class SandboxError(Exception):
    """Base of every selfbox exception. ``status_code`` is the matching HTTP status, looked up
    by ``error_code`` in the one table (:data:`executors.http_status.HTTP_STATUS`) unless a
    class sets it itself."""

    status_code: int = 500
    error_code: str = "sandbox_error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "status_code" not in cls.__dict__:
            cls.status_code = HTTP_STATUS.get(cls.error_code, cls.status_code)

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigurationError(SandboxError, ValueError):
    error_code = "configuration_error"


class MissingDependencyError(ConfigurationError, ImportError):
    error_code = "missing_dependency"


class ExecutorClosedError(SandboxError):
    error_code = "executor_closed"


class SandboxConnectionError(SandboxError):
    error_code = "connection_error"


class AuthenticationError(SandboxError):
    error_code = "unauthorized"


class SandboxNotFoundError(SandboxError):
    error_code = "sandbox_not_found"


class SandboxGoneError(SandboxError):
    error_code = "sandbox_gone"


class InvalidRequestError(SandboxError):
    error_code = "invalid_request"


class RateLimitError(SandboxError):
    error_code = "too_many_sandboxes"


class ToolError(SandboxError):
    error_code = "tool_error"


class ServerError(SandboxError):
    error_code = "server_error"


_CLIENT_CLASSES: tuple[type[SandboxError], ...] = (
    AuthenticationError, SandboxNotFoundError, SandboxGoneError, RateLimitError)
_BY_STATUS: dict[int, type[SandboxError]] = {
    403: AuthenticationError, **{cls.status_code: cls for cls in _CLIENT_CLASSES}}


def exception_for_status(status: int) -> type[SandboxError]:
    """The exception class a client raises for an HTTP error status."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = InvalidRequestError if 400 <= status < 500 else ServerError
    return cls
