"""The exceptions of selfbox's agent library, rooted at :class:`executors.exceptions.SandboxError`.

Errors *in the code the model writes* are not raised: they become observations the model sees
at its next step. What is raised is a failure of the agent's set-up, of the model, or a run
that ended without an answer::

    SandboxError                        executors.exceptions; executor failures raise its subclasses
     └── AgentError                     any failure of the agent library
          ├── ToolDefinitionError       @tool could not build a tool (bad name, docstring, hint)
          ├── AgentMaxStepsError        the step limit was reached without final_answer()
          └── ModelError                the model could not produce a reply
               ├── ModelConnectionError     the model server cannot be reached
               │    └── ModelTimeoutError   ... or did not answer in time
               ├── ModelAuthenticationError 401/403: no API key or a wrong one
               ├── ModelRateLimitError      429: slow down
               ├── ModelRequestError        other 4xx: unknown model, bad parameter, too long
               ├── ModelServerError         5xx from the model server
               └── ModelResponseError       a reply that is not the expected JSON
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from executors.exceptions import SandboxError

if TYPE_CHECKING:
    from .steps import ActionStep

__all__ = [
    "AgentError",
    "AgentMaxStepsError",
    "ModelAuthenticationError",
    "ModelConnectionError",
    "ModelError",
    "ModelRateLimitError",
    "ModelRequestError",
    "ModelResponseError",
    "ModelServerError",
    "ModelTimeoutError",
    "ToolDefinitionError",
]


class AgentError(SandboxError):
    """Base of the agent library's exceptions."""

    status_code = 500
    error_code = "agent_error"


class ToolDefinitionError(AgentError, ValueError):
    status_code = 400
    error_code = "tool_definition_error"


class AgentMaxStepsError(AgentError):
    """The run used all its steps without calling ``final_answer``.

    ``steps`` holds every step of the run, so the caller can still inspect what happened (and
    the last observation) after catching it.
    """

    error_code = "max_steps_reached"

    def __init__(self, message: str = "", *, steps: list[ActionStep] | None = None, **details: Any):
        super().__init__(message, **details)
        self.steps: list[ActionStep] = list(steps or [])


class ModelError(AgentError):
    """The model failed to produce a reply. ``status`` is the HTTP status, when there was one."""

    status_code = 502
    error_code = "model_error"

    def __init__(self, message: str = "", *, status: int | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.status = status


class ModelConnectionError(ModelError):
    status_code = 503
    error_code = "model_connection_error"


class ModelTimeoutError(ModelConnectionError):
    status_code = 504
    error_code = "model_timeout"


class ModelAuthenticationError(ModelError):
    status_code = 401
    error_code = "model_unauthorized"


class ModelRateLimitError(ModelError):
    status_code = 429
    error_code = "model_rate_limited"


class ModelRequestError(ModelError):
    status_code = 400
    error_code = "model_bad_request"


class ModelServerError(ModelError):
    error_code = "model_server_error"


class ModelResponseError(ModelError):
    error_code = "model_bad_response"
