"""The code agent: the model writes Python, an executor runs it, the output goes back.

    from agent import CodeAgent, OpenAICompatibleModel, tool

    @tool
    def get_weather(city: str) -> str:
        \"\"\"Today's weather.

        Args:
            city: The city's name.
        \"\"\"
        return "sunny"

    model = OpenAICompatibleModel("qwen2.5-coder", base_url="http://localhost:11434/v1")
    with CodeAgent([get_weather], model) as agent:
        print(agent.run("Is it sunny in Paris?"))

When the step limit is reached without ``final_answer``, :meth:`CodeAgent.run` raises
:class:`~agent.exceptions.AgentMaxStepsError`, which carries every step (so the caller still
sees what the model tried); the agent's :attr:`~CodeAgent.result` then has ``state="max_steps"``
(``"success"`` after ``final_answer``, ``"error"`` when the model or the executor raised).
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self, overload

from executors.base import Executor
from executors.factory import create_executor

from .exceptions import AgentError, AgentMaxStepsError, ModelError, ModelResponseError
from .models.base import ChatMessage, Model
from .parsing import cut_at_stop, extract_code
from .prompts import DEFAULT_SYSTEM_PROMPT, NO_CODE_OBSERVATION, format_observation, truncate
from .prompts import render_system_prompt as _render_system_prompt
from .steps import ActionStep, RunResult
from .tools import Tool, tools_by_name

__all__ = ["CodeAgent", "StepCallback"]

StepCallback = Callable[[ActionStep], object]

# Generation stops here, so that the model does not write the output of its own code.
DEFAULT_STOP_SEQUENCES = ("Observation:",)


def _check_max_steps(max_steps: int) -> None:
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise AgentError(f"max_steps must be a positive integer, got {max_steps!r}")


def _takes_stop(model: Model) -> bool:
    """Whether ``model.generate`` takes ``stop=`` (the minimum is ``generate(messages)``)."""
    try:
        params = inspect.signature(model.generate).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "stop" or p.kind is p.VAR_KEYWORD for p in params)


def _local_imports(executor: Executor | None, additional: list[str]) -> list[str] | None:
    """Everything the local interpreter lets the code import, or None if unknown."""
    try:
        # Imported by name, here: the local back end is loaded only when it is used.
        defaults = importlib.import_module("executors.local").DEFAULT_AUTHORIZED_IMPORTS
    except (ImportError, AttributeError):
        return None
    extra = getattr(executor, "additional_authorized_imports", None)
    return [*defaults, *(additional if extra is None else extra)]


class CodeAgent:
    """Solves a task in steps: model reply -> code -> execution -> observation -> model ...

    Args:
        tools: Tools (``@tool`` functions, or plain functions, made into tools), or a mapping
            name -> callable.
        model: Anything implementing :class:`~agent.models.Model`.
        executor_type: ``"local"``, ``"docker"`` or ``"e2b"``; the executor is created on the
            first run with :func:`executors.create_executor` and closed by :meth:`close`.
        executor_kwargs: More arguments for the executor's constructor.
        executor: An executor to use instead of creating one. The agent does not close an
            executor it was given: its owner does.
        additional_authorized_imports: Modules the code may import on top of the local
            executor's defaults (only the ``local`` executor restricts imports).
        max_steps: Model calls per run before :class:`AgentMaxStepsError`.
        step_callbacks: Called with each :class:`ActionStep` once it is complete.
        instructions: Extra text appended to the system prompt.
        system_prompt_template: Replaces the default template (fields: ``{tools}``,
            ``{imports}``, ``{instructions}``).
        max_observation_chars: Bound on the logs and on the result text in each observation.
        code_timeout_s: Time limit for each code execution (the executor's default if None).
        stop_sequences: Sent to the model with every call.
    """

    def __init__(
        self,
        tools: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]],
        model: Model,
        executor_type: str = "local",
        executor_kwargs: Mapping[str, Any] | None = None,
        additional_authorized_imports: Iterable[str] = (),
        max_steps: int = 10,
        *,
        executor: Executor | None = None,
        step_callbacks: Iterable[StepCallback] = (),
        instructions: str | None = None,
        system_prompt_template: str = DEFAULT_SYSTEM_PROMPT,
        max_observation_chars: int = 10_000,
        code_timeout_s: float | None = None,
        stop_sequences: Sequence[str] = DEFAULT_STOP_SEQUENCES,
    ) -> None:
        _check_max_steps(max_steps)
        self.tools: dict[str, Tool] = tools_by_name(tools)
        self.model = model
        self.executor_type = executor_type
        self.executor_kwargs = dict(executor_kwargs or {})
        self.additional_authorized_imports = list(additional_authorized_imports)
        self.max_steps = max_steps
        self.step_callbacks = list(step_callbacks)
        self.instructions = instructions
        self.system_prompt_template = system_prompt_template
        self.max_observation_chars = max_observation_chars
        self.code_timeout_s = code_timeout_s
        self.stop_sequences = list(stop_sequences)
        self._executor = executor
        self._owns_executor = executor is None
        self._closed = False
        self._tools_sent = False
        self.steps: list[ActionStep] = []
        self.result: RunResult | None = None
        self._messages: list[ChatMessage] = []
        self._model_takes_stop = _takes_stop(model)

    # -- executor -------------------------------------------------------------------------

    @property
    def executor(self) -> Executor:
        """The agent's executor, created (and sent the tools) on first use."""
        if self._closed:
            raise AgentError("this agent is closed")
        if self._executor is None:
            kwargs = dict(self.executor_kwargs)
            if self.executor_type == "local":
                # Only the local interpreter restricts imports; the sandboxes allow any.
                extra = list(kwargs.pop("additional_authorized_imports", []))
                kwargs["additional_authorized_imports"] = list(
                    dict.fromkeys([*extra, *self.additional_authorized_imports])
                )
            self._executor = create_executor(self.executor_type, **kwargs)
            self._owns_executor = True
            self._send_tools(self._executor)
        elif not self._tools_sent:
            self._send_tools(self._executor)
        return self._executor

    def _send_tools(self, executor: Executor) -> None:
        self._tools_sent = True
        if self.tools:
            executor.send_tools({name: t.executor_callable() for name, t in self.tools.items()})

    def close(self) -> None:
        """Close the executor the agent created (ending its sandbox). Idempotent.

        The model and an executor passed in belong to the caller, who closes them.
        """
        if self._closed:
            return
        self._closed = True
        if self._executor is not None and self._owns_executor:
            self._executor.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.close()

    # -- prompt ---------------------------------------------------------------------------

    def render_system_prompt(self, executor: Executor | None = None) -> str:
        """The system prompt for this agent's tools and executor."""
        uses_local = (executor.executor_type if executor else self.executor_type) == "local"
        authorized = getattr(executor, "authorized_imports", None) if executor else None
        if authorized is None and uses_local:
            authorized = _local_imports(executor, self.additional_authorized_imports)
        return _render_system_prompt(
            self.tools,
            authorized_imports=sorted(authorized) if authorized is not None else None,
            extra_imports=self.additional_authorized_imports if uses_local else None,
            instructions=self.instructions,
            template=self.system_prompt_template,
        )

    @property
    def messages(self) -> list[ChatMessage]:
        """The conversation so far, as sent to the model (a copy)."""
        return [ChatMessage(role=m["role"], content=m["content"]) for m in self._messages]

    # -- running --------------------------------------------------------------------------

    @overload
    def run(
        self,
        task: str,
        *,
        stream: Literal[False] = False,
        reset: bool = True,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
    ) -> Any: ...

    @overload
    def run(
        self,
        task: str,
        *,
        stream: Literal[True],
        reset: bool = True,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
    ) -> Iterator[ActionStep]: ...

    def run(
        self,
        task: str,
        *,
        stream: bool = False,
        reset: bool = True,
        additional_args: Mapping[str, Any] | None = None,
        max_steps: int | None = None,
    ) -> Any:
        """Solve ``task``; return the value passed to ``final_answer``.

        With ``stream=True``, return an iterator of the steps as they complete instead (the
        answer is then in :attr:`result`). ``reset=False`` continues the previous conversation.
        ``additional_args`` become variables of the code's namespace. Raises
        :class:`AgentMaxStepsError` when ``max_steps`` (default: the agent's) run out.
        """
        if max_steps is not None:
            _check_max_steps(max_steps)
        if not isinstance(task, str) or not task.strip():
            raise AgentError("the task must be a non-empty string")
        steps = self._run_steps(
            task,
            reset=reset,
            additional_args=additional_args,
            max_steps=self.max_steps if max_steps is None else max_steps,
        )
        if stream:
            return steps
        for _ in steps:
            pass
        assert self.result is not None
        return self.result.answer

    def _run_steps(
        self,
        task: str,
        *,
        reset: bool,
        additional_args: Mapping[str, Any] | None,
        max_steps: int,
    ) -> Iterator[ActionStep]:
        started = time.monotonic()
        result = self.result = RunResult(task=task)
        try:
            executor = self.executor
            if additional_args:
                executor.send_variables(dict(additional_args))
                names = ", ".join(sorted(additional_args))
                task += f"\n\nThese variables are already defined in your Python session: {names}."
            if reset or not self._messages:
                self.steps = []
                self._messages = [
                    ChatMessage(role="system", content=self.render_system_prompt(executor))
                ]
            self._messages.append(ChatMessage(role="user", content=f"New task:\n{task}"))
            first = len(self.steps) + 1
            for number in range(first, first + max_steps):
                step = self._step(number, executor)
                self.steps.append(step)
                result.steps.append(step)
                if step.is_final_answer:
                    # Before yielding: a consumer may stop iterating at the final step.
                    result.answer, result.state = step.final_answer, "success"
                for callback in self.step_callbacks:
                    callback(step)
                yield step
                if step.is_final_answer:
                    return
            result.state = "max_steps"
        except BaseException:
            # GeneratorExit included: a stream abandoned half-way did not succeed.
            if result.state == "running":
                result.state = "error"
            raise
        finally:
            result.duration_s = time.monotonic() - started
        last = truncate(result.steps[-1].observation, 1_000)
        raise AgentMaxStepsError(
            f"no final answer after {max_steps} steps; the last observation was:\n{last}",
            steps=result.steps,
        )

    def _step(self, number: int, executor: Executor) -> ActionStep:
        started = time.monotonic()
        step = ActionStep(step_number=number)
        try:
            if self._model_takes_stop:
                reply = self.model.generate(self.messages, stop=self.stop_sequences or None)
            else:
                reply = self.model.generate(self.messages)
        except AgentError:
            raise
        except Exception as exc:
            # A custom model's own failure: give callers one exception type to handle.
            raise ModelError(f"the model failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(reply, str):
            raise ModelResponseError(f"the model returned a {type(reply).__name__}, not a str")
        usage = getattr(self.model, "last_usage", None)
        step.token_usage = dict(usage) if isinstance(usage, dict) else None
        # Servers that ignore ``stop`` let the model invent observations: drop them.
        reply = cut_at_stop(reply, self.stop_sequences)
        step.model_output = reply
        self._messages.append(ChatMessage(role="assistant", content=reply))
        step.code = extract_code(reply)
        if step.code is None:
            step.error = "no code block in the model's reply"
            step.observation = NO_CODE_OBSERVATION
        else:
            try:
                execution = executor.run(step.code, timeout_s=self.code_timeout_s)
            except Exception as exc:
                # The executor itself failed (not the code): keep the step for inspection.
                step.error = f"executor failure: {type(exc).__name__}: {exc}"
                step.duration_s = time.monotonic() - started
                self.steps.append(step)
                if self.result is not None:
                    self.result.steps.append(step)
                raise
            step.execution = execution
            step.observation = format_observation(execution, max_chars=self.max_observation_chars)
            if execution.error is not None:
                step.error = str(execution.error)
            elif execution.status != "ok":
                step.error = f"execution status: {execution.status}"
            if execution.is_final_answer:
                step.is_final_answer = True
                step.final_answer = execution.final_answer
        self._messages.append(ChatMessage(role="user", content=f"Observation:\n{step.observation}"))
        step.duration_s = time.monotonic() - started
        return step
