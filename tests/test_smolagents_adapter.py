"""executors.smolagents: a real smolagents CodeAgent running on selfbox executors."""

from __future__ import annotations

import base64
import inspect
import io
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

smolagents = pytest.importorskip("smolagents")

from smolagents import (  # noqa: E402
    CodeAgent,
    FinalAnswerTool,
    Tool,
    tool,
)
from smolagents.local_python_executor import CodeOutput, InterpreterError, PythonExecutor  # noqa: E402
from smolagents.models import ChatMessage, MessageRole, Model  # noqa: E402

from executors.base import Executor  # noqa: E402
from executors.exceptions import MissingDependencyError  # noqa: E402
from executors.models import Execution, Result  # noqa: E402
from executors.smolagents import SelfboxPythonExecutor  # noqa: E402
from tests.fakes import ExecExecutor  # noqa: E402

# Executor types the end-to-end tests run on; docker uses the root conftest's live ``server``
# (real Docker sandboxes) and carries its marker. e2b is not listed: it ships tools as source,
# and smolagents tools are objects, not plain functions (see the module's known gaps).
EXECUTOR_TYPES = [
    "exec",
    "local",
    "local-process",
    pytest.param("docker", marks=pytest.mark.docker),
]


@pytest.fixture(params=EXECUTOR_TYPES)
def selfbox_executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    from executors import create_executor

    if request.param == "exec":
        executor: Executor = ExecExecutor()
    elif request.param == "docker":
        from tests.conftest import API_KEYS

        server = request.getfixturevalue("server")
        executor = create_executor("docker", base_url=server.url, api_key=API_KEYS[0],
                                   memory_mb=256)
    elif request.param == "local-process":
        executor = create_executor("local", isolation="process")
    else:
        executor = create_executor(request.param)
    yield executor
    executor.close()


class ScriptedSmolModel(Model):
    """A smolagents model replaying canned replies and recording what it was sent."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)
        self.seen: list[list[Any]] = []

    def generate(self, messages, stop_sequences=None, response_format=None,
                 tools_to_call_from=None, **kwargs):
        self.seen.append(list(messages))
        if not self.replies:
            raise RuntimeError("scripted model ran out of replies")
        return ChatMessage(role=MessageRole.ASSISTANT, content=self.replies.pop(0))


def code(body: str) -> str:
    return f"Thought: let me run this.\n<code>\n{body}\n</code>"


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def _message_text(message: Any) -> str:
    content = message.content if hasattr(message, "content") else message["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content)
    return str(content)


def test_codeagent_runs_end_to_end(selfbox_executor):
    model = ScriptedSmolModel([
        code("total = add(2, 3)\nprint('total is', total)"),
        code("final_answer(total * 10)"),
    ])
    adapter = SelfboxPythonExecutor(selfbox_executor)
    agent = CodeAgent(tools=[add], model=model, executor=adapter, max_steps=4)
    assert agent.python_executor is adapter
    assert agent.run("Add 2 and 3, times ten.") == 50
    # The second model call saw the first step's logs.
    assert "total is 5" in _message_text(model.seen[1][-1])
    steps = [s for s in agent.memory.steps if type(s).__name__ == "ActionStep"]
    assert len(steps) == 2 and steps[0].error is None
    assert "total is 5" in steps[0].observations


def test_code_errors_are_recorded_and_the_agent_recovers(selfbox_executor):
    model = ScriptedSmolModel([
        code("print('about to fail')\nresult = 1 / 0"),
        code("final_answer('fixed')"),
    ])
    agent = CodeAgent(tools=[], model=model, executor=SelfboxPythonExecutor(selfbox_executor),
                      max_steps=3)
    assert agent.run("divide") == "fixed"
    failed = next(s for s in agent.memory.steps if type(s).__name__ == "ActionStep")
    assert failed.error is not None
    text = str(failed.error)
    assert "ZeroDivisionError" in text and "about to fail" in text
    assert "ZeroDivisionError" in _message_text(model.seen[1][-1])


def test_additional_args_reach_the_code(selfbox_executor):
    model = ScriptedSmolModel([code("final_answer(numbers[0] + numbers[-1])")])
    agent = CodeAgent(tools=[], model=model, executor=SelfboxPythonExecutor(selfbox_executor))
    assert agent.run("sum ends", additional_args={"numbers": [4, 5, 6]}) == 10


def test_agent_cleanup_closes_the_executor():
    executor = ExecExecutor()
    model = ScriptedSmolModel([code("final_answer(1)")])
    with CodeAgent(tools=[], model=model, executor=SelfboxPythonExecutor(executor)) as agent:
        agent.run("t")
        assert not executor.closed
    assert executor.closed


def test_cleanup_can_leave_the_executor_open():
    executor = ExecExecutor()
    SelfboxPythonExecutor(executor, close_executor=False).cleanup()
    assert not executor.closed


def test_is_a_smolagents_python_executor():
    assert isinstance(SelfboxPythonExecutor(ExecExecutor()), PythonExecutor)


def test_call_returns_code_output():
    adapter = SelfboxPythonExecutor(ExecExecutor())
    adapter.send_tools({"add": add, "final_answer": FinalAnswerTool()})
    out = adapter("print('hi')\nadd(1, 2)")
    assert isinstance(out, CodeOutput)
    assert (out.output, out.logs, out.is_final_answer) == ("3", "hi\n", False)
    final = adapter("final_answer({'answer': 1, 'x': [2]})")
    assert final.is_final_answer and final.output == {"answer": 1, "x": [2]}
    assert adapter("x = 1").output is None


def test_custom_final_answer_tool_is_applied_on_the_host():
    class ShoutingFinalAnswer(Tool):
        name = "final_answer"
        description = "Final answer, upper-cased."
        inputs = {"answer": {"type": "any", "description": "The answer."}}
        output_type = "any"

        def forward(self, answer):
            if answer == "bad":
                raise ValueError("not acceptable")
            return str(answer).upper()

    adapter = SelfboxPythonExecutor(ExecExecutor())
    adapter.send_tools({"final_answer": ShoutingFinalAnswer()})
    assert adapter("final_answer('yes')").output == "YES"
    with pytest.raises(InterpreterError, match="not acceptable"):
        adapter("final_answer('bad')")


def test_errors_raise_interpreter_error_with_logs_and_traceback():
    adapter = SelfboxPythonExecutor(ExecExecutor())
    with pytest.raises(InterpreterError) as caught:
        adapter("print('partial')\n{}['missing']")
    message = str(caught.value)
    assert message.startswith("partial\n")
    assert "Code execution failed: KeyError: 'missing'" in message
    assert "Traceback (tail):" in message


@pytest.mark.parametrize("status, text", [("timeout", "time limit"), ("oom_killed", "memory"),
                                          ("sandbox_died", "lost")])
def test_abnormal_statuses_raise(status, text):
    executor = ExecExecutor()
    executor.scripted.append(Execution(stdout="so far\n", status=status))
    with pytest.raises(InterpreterError, match=text) as caught:
        SelfboxPythonExecutor(executor)("while True: pass")
    assert "so far" in str(caught.value)


def test_image_results_become_pil_images():
    pil_image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil_image.new("RGB", (3, 2), "red").save(buffer, format="PNG")
    executor = ExecExecutor()
    executor.scripted.append(Execution(results=[Result({
        "text/plain": "<Figure>", "image/png": base64.b64encode(buffer.getvalue()).decode()})]))
    output = SelfboxPythonExecutor(executor)("fig").output
    assert isinstance(output, pil_image.Image) and output.size == (3, 2)


def test_stderr_is_part_of_the_logs():
    executor = ExecExecutor()
    executor.scripted.append(Execution(stdout="out", stderr="warn\n"))
    assert SelfboxPythonExecutor(executor)("x").logs == "out\nwarn\n"


def test_tools_are_sent_as_plain_callables_without_final_answer():
    received: dict[str, Any] = {}

    class Recorder(ExecExecutor):
        def send_tools(self, tools):
            received.update(tools)
            super().send_tools(tools)

    adapter = SelfboxPythonExecutor(Recorder())
    adapter.send_tools({"add": add, "final_answer": FinalAnswerTool()})
    assert list(received) == ["add"]
    assert received["add"].__name__ == "add" and received["add"](a=2, b=2) == 4
    assert list(inspect.signature(received["add"]).parameters) == ["a", "b"]
    adapter.send_variables({})  # nothing to send is fine


def test_executor_type_name_creates_the_executor(monkeypatch):
    made: list[tuple[str, dict[str, Any]]] = []

    def fake_create(executor_type, **kwargs):
        made.append((executor_type, kwargs))
        return ExecExecutor()

    monkeypatch.setattr("executors.smolagents.create_executor", fake_create)
    adapter = SelfboxPythonExecutor("local", additional_authorized_imports=["math"])
    assert made == [("local", {"additional_authorized_imports": ["math"]})]
    assert isinstance(adapter.executor, ExecExecutor)
    with pytest.raises(TypeError):
        SelfboxPythonExecutor(ExecExecutor(), additional_authorized_imports=["math"])


def test_missing_smolagents_names_the_extra():
    probe = (
        "import sys\n"
        "sys.modules['smolagents'] = None\n"
        "sys.modules['smolagents.local_python_executor'] = None\n"
        "import executors.smolagents as m\n"  # importing the module itself must work
        "try:\n"
        "    m.SelfboxPythonExecutor('local')\n"
        "except m.MissingDependencyError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60)
    assert "pip install 'selfbox[smolagents]'" in out.stdout, out.stderr
    assert issubclass(MissingDependencyError, ImportError)


def test_back_end_refusing_host_tools_gets_a_clear_error():
    from executors.exceptions import ToolError

    class SourceOnly(ExecExecutor):
        executor_type = "e2b"

        def send_tools(self, tools):
            raise ToolError("tool 'add' is a closure over tool")

    adapter = SelfboxPythonExecutor(SourceOnly())
    with pytest.raises(ToolError, match="cannot call smolagents tools \\(add\\)") as caught:
        adapter.send_tools({"add": add, "final_answer": FinalAnswerTool()})
    assert isinstance(caught.value.__cause__, ToolError)
    adapter.send_tools({"final_answer": FinalAnswerTool()})  # no tools to send: fine


@pytest.mark.docker
@pytest.mark.e2b
def test_smolagents_own_e2b_executor_runs_on_selfbox(server, monkeypatch):
    """smolagents' built-in ``executor_type="e2b"``, unmodified, pointed at selfbox's E2B API."""
    from tests.conftest import API_KEYS

    monkeypatch.setenv("E2B_API_URL", server.url)
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url)
    monkeypatch.setenv("E2B_API_KEY", API_KEYS[0])
    model = ScriptedSmolModel([
        code("import numpy as np\ntotal = add(2, 3)\nprint('total is', total, np.arange(3).sum())"),
        code("print(undefined_name)"),
        code("final_answer({'total': total * 10, 'kept': total})"),
    ])
    agent = CodeAgent(tools=[add], model=model, executor_type="e2b",
                      additional_authorized_imports=["numpy"], max_steps=5)
    try:
        assert agent.run("Add 2 and 3, times ten.") == {"total": 50, "kept": 5}
        steps = [s for s in agent.memory.steps if type(s).__name__ == "ActionStep"]
        assert "total is 5 3" in steps[0].observations
        assert "NameError" in str(steps[1].error)
    finally:
        agent.cleanup()
