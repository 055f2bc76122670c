"""selfbox agents: a small code agent that runs model-written Python on any selfbox executor.

    from agent import CodeAgent, OpenAICompatibleModel, tool

    @tool
    def get_price(item: str) -> float:
        \"\"\"The price of an item, in euros.

        Args:
            item: The item's name.
        \"\"\"
        return {"apple": 0.5, "pear": 0.75}[item]

    model = OpenAICompatibleModel("qwen2.5-coder:7b", base_url="http://localhost:11434/v1")
    with CodeAgent([get_price], model, executor_type="local") as agent:
        print(agent.run("How much do 3 apples and 2 pears cost?"))
        for step in agent.steps:            # what happened, step by step
            print(step.step_number, step.code, step.observation)

Each step, the model writes Python in a ```python block; the executor (``local``, ``docker``
or ``e2b``) runs it with the tools defined; what it printed, its last value or its error go back
to the model as the next observation, until the code calls ``final_answer(value)``. Watch the
steps live with ``agent.run(task, stream=True)`` (an iterator) or ``step_callbacks=[...]``.
Offline, ``ScriptedModel([...replies...])`` replays canned replies; ``python -m agent`` runs a
task from the command line.

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
