"""selfbox agents: a small code agent that runs model-written Python on any selfbox executor.

    from agent import CodeAgent, ScriptedModel, tool

Importing this package pulls in no executor back end (no docker, fastapi or e2b): the executor
is created lazily, on the agent's first run.
"""

from .agent import CodeAgent, StepCallback
from .exceptions import (
    AgentError,
    AgentMaxStepsError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelRequestError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
    ToolDefinitionError,
)
from .models import ChatMessage, Model, OpenAICompatibleModel, OpenAIModel, ScriptedModel
from .parsing import extract_code
from .prompts import DEFAULT_SYSTEM_PROMPT, format_observation
from .steps import ActionStep, RunResult
from .tools import Tool, tool

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "ActionStep",
    "AgentError",
    "AgentMaxStepsError",
    "ChatMessage",
    "CodeAgent",
    "Model",
    "ModelAuthenticationError",
    "ModelConnectionError",
    "ModelError",
    "ModelRateLimitError",
    "ModelRequestError",
    "ModelResponseError",
    "ModelServerError",
    "ModelTimeoutError",
    "OpenAICompatibleModel",
    "OpenAIModel",
    "RunResult",
    "ScriptedModel",
    "StepCallback",
    "Tool",
    "ToolDefinitionError",
    "extract_code",
    "format_observation",
    "tool",
]
