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
]


class SandboxError(Exception):
    """Base of every selfbox exception. ``status_code`` is the matching HTTP status."""

    status_code: int = 500
    error_code: str = "sandbox_error"

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigurationError(SandboxError, ValueError):
    status_code = 400
    error_code = "configuration_error"


class MissingDependencyError(ConfigurationError, ImportError):
    error_code = "missing_dependency"


class ExecutorClosedError(SandboxError):
    status_code = 409
    error_code = "executor_closed"


class SandboxConnectionError(SandboxError):
    status_code = 503
    error_code = "connection_error"


class AuthenticationError(SandboxError):
    status_code = 401
    error_code = "unauthorized"


class SandboxNotFoundError(SandboxError):
    status_code = 404
    error_code = "sandbox_not_found"


class SandboxGoneError(SandboxError):
    status_code = 410
    error_code = "sandbox_gone"


class InvalidRequestError(SandboxError):
    status_code = 422
    error_code = "invalid_request"


class RateLimitError(SandboxError):
    status_code = 429
    error_code = "too_many_sandboxes"


class ToolError(SandboxError):
    status_code = 400
    error_code = "tool_error"


class ServerError(SandboxError):
    status_code = 500
    error_code = "server_error"
