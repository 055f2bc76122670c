"""The CodeAgent loop, end to end over every executor type (see ``agent_factory``)."""

from __future__ import annotations

import pytest

from agent import (
    ActionStep,
    AgentError,
    AgentMaxStepsError,
    CodeAgent,
    Model,
    ModelError,
    ModelResponseError,
    ScriptedModel,
    tool,
)
from executors.exceptions import SandboxError


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return a * b


def code(body: str) -> str:
    return f"Thought: let me compute.\n```python\n{body}\n```"


def test_single_step_final_answer(agent_factory):
    model = ScriptedModel([code("final_answer(multiply(6, 7))")])
    agent = agent_factory([multiply], model)
    assert agent.run("What is 6 times 7?") == 42
    assert len(agent.steps) == 1
    step = agent.steps[0]
    assert step.is_final_answer and step.final_answer == 42
    assert step.code == "final_answer(multiply(6, 7))"
    assert agent.result is not None and agent.result.state == "success"
    assert agent.result.answer == 42


def test_state_persists_and_observation_reaches_the_model(agent_factory):
    model = ScriptedModel(
        [
            code("x = multiply(3, 5)\nprint('x is', x)"),
            code("x + 1"),
            code("final_answer(x * 2)"),
        ]
    )
    agent = agent_factory([multiply], model)
    assert agent.run("compute") == 30
    # The second call saw the first step's printed output, marked as an observation.
    second_call = model.calls[1]
    assert second_call[-1]["role"] == "user"
    assert second_call[-1]["content"].startswith("Observation:")
    assert "Execution logs:\nx is 15" in second_call[-1]["content"]
    # The third saw the value of the last expression.
    assert "Last output from code snippet:\n16" in model.calls[2][-1]["content"]
    assert [s.step_number for s in agent.steps] == [1, 2, 3]


def test_code_error_becomes_an_observation_and_the_model_can_recover(agent_factory):
    model = ScriptedModel(
        [
            code("print('before')\nundefined_name + 1"),
            code("final_answer('recovered')"),
        ]
    )
    agent = agent_factory([], model)
    assert agent.run("task") == "recovered"
    failed = agent.steps[0]
    assert failed.error is not None and "NameError" in failed.error
    assert failed.execution is not None and failed.execution.error is not None
    observation = model.calls[1][-1]["content"]
    assert "Error: NameError" in observation
    assert "undefined_name" in observation
    assert "before" in observation  # the logs printed before the error are kept
    assert not agent.steps[1].error


def test_reply_without_code_gets_a_format_reminder(agent_factory):
    model = ScriptedModel(["I think the answer is 4.", code("final_answer(4)")])
    agent = agent_factory([], model)
    assert agent.run("2+2?") == 4
    first = agent.steps[0]
    assert first.code is None and first.execution is None
    assert first.error is not None
    reminder = model.calls[1][-1]["content"]
    assert "no code block" in reminder and "```python" in reminder


def test_max_steps_raises_with_steps_attached(agent_factory):
    model = ScriptedModel([code(f"print({i})") for i in range(3)])
    agent = agent_factory([], model, max_steps=3)
    with pytest.raises(AgentMaxStepsError) as caught:
        agent.run("never finishes")
    assert isinstance(caught.value, AgentError) and isinstance(caught.value, SandboxError)
    assert [s.step_number for s in caught.value.steps] == [1, 2, 3]
    assert "no final answer after 3 steps" in str(caught.value)
    assert agent.result is not None and agent.result.state == "max_steps"
    assert model.remaining == 0


def test_stream_yields_steps_as_they_happen(agent_factory):
    model = ScriptedModel([code("y = 2"), code("final_answer(y ** 10)")])
    agent = agent_factory([], model)
    stream = agent.run("power", stream=True)
    # Nothing ran before iteration started.
    assert model.calls == []
    first = next(stream)
    assert isinstance(first, ActionStep) and first.step_number == 1
    assert len(model.calls) == 1  # the second model call has not happened yet
    rest = list(stream)
    assert [s.step_number for s in rest] == [2]
    assert rest[-1].is_final_answer and agent.result.answer == 1024


def test_step_callbacks_see_each_completed_step(agent_factory):
    seen: list[tuple[int, str | None]] = []
    model = ScriptedModel([code("1/0"), code("final_answer('done')")])
    agent = agent_factory(
        [], model, step_callbacks=[lambda step: seen.append((step.step_number, step.error))]
    )
    agent.run("task")
    assert len(seen) == 2
    assert seen[0][0] == 1 and "ZeroDivisionError" in (seen[0][1] or "")
    assert seen[1] == (2, None)


def test_system_prompt_describes_tools_and_format(agent_factory):
    model = ScriptedModel([code("final_answer(1)")])
    agent = agent_factory([multiply], model, instructions="Answer in French.")
    agent.run("task")
    system = model.calls[0][0]
    assert system["role"] == "system"
    assert "def multiply(a: integer, b: integer) -> integer:" in system["content"]
    assert "Multiply two integers." in system["content"]
    assert "a (integer): The first factor." in system["content"]
    assert "final_answer" in system["content"] and "```python" in system["content"]
    assert system["content"].rstrip().endswith("Answer in French.")
    assert model.calls[0][1] == {"role": "user", "content": "New task:\ntask"}
    assert model.stops[0] == ["Observation:"]


def test_additional_args_become_variables(agent_factory):
    model = ScriptedModel([code("final_answer(len(document))")])
    agent = agent_factory([], model)
    assert agent.run("How long?", additional_args={"document": "abcdef"}) == 6
    assert "document" in model.calls[0][1]["content"]


def test_reset_false_continues_the_conversation(agent_factory):
    model = ScriptedModel([code("z = 5\nfinal_answer(z)"), code("final_answer(z + 1)")])
    agent = agent_factory([], model)
    assert agent.run("first") == 5
    assert agent.run("second", reset=False) == 6
    assert [s.step_number for s in agent.steps] == [1, 2]
    tasks = [m["content"] for m in model.calls[1] if m["content"].startswith("New task:")]
    assert tasks == ["New task:\nfirst", "New task:\nsecond"]


def test_reset_run_starts_a_new_conversation_on_the_same_executor(agent_factory):
    model = ScriptedModel([code("z = 5\nfinal_answer(z)"), code("final_answer(z * 3)")])
    agent = agent_factory([], model)
    agent.run("first")
    assert agent.run("second") == 15  # the executor's state (z) persists...
    assert [s.step_number for s in agent.steps] == [1]  # ...but the steps start over
    assert [m["role"] for m in model.calls[1]] == ["system", "user"]


def test_long_output_is_truncated_in_the_observation(agent_factory):
    model = ScriptedModel([code("print('a' * 5000 + 'END')"), code("final_answer(0)")])
    agent = agent_factory([], model, max_observation_chars=200)
    agent.run("flood")
    observation = model.calls[1][-1]["content"]
    assert "characters truncated" in observation
    assert observation.count("a") < 400
    assert "END" in observation  # the tail is kept
    # The full output stays available in the step's execution.
    assert "a" * 5000 in agent.steps[0].execution.stdout


def test_model_failure_is_wrapped_in_model_error(agent_factory):
    def broken(messages):
        raise RuntimeError("GPU on fire")

    agent = agent_factory([], ScriptedModel(broken))
    with pytest.raises(ModelError, match="GPU on fire") as caught:
        agent.run("task")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_running_out_of_scripted_replies_is_a_model_error(agent_factory):
    agent = agent_factory([], ScriptedModel([code("x = 1")]), max_steps=5)
    with pytest.raises(ModelError, match="ran out of replies"):
        agent.run("task")
    assert len(agent.steps) == 1


def test_plain_functions_are_accepted_as_tools(agent_factory):
    def shout(text: str) -> str:
        """Upper-case the text.

        Args:
            text: What to shout.
        """
        return text.upper()

    model = ScriptedModel([code("final_answer(shout('hi'))")])
    agent = agent_factory([shout], model)
    assert agent.run("shout") == "HI"
    assert "def shout(text: string) -> string:" in model.calls[0][0]["content"]


def test_agent_closes_the_executor_it_created(monkeypatch, fake_executor):
    created: list[object] = []

    def fake_create(executor_type, **kwargs):
        created.append((executor_type, kwargs))
        return fake_executor

    monkeypatch.setattr("agent.agent.create_executor", fake_create)
    with CodeAgent(
        [multiply],
        ScriptedModel([code("final_answer(multiply(2, 3))")]),
        additional_authorized_imports=["math"],
    ) as agent:
        assert agent.run("t") == 6
    assert created == [("local", {"additional_authorized_imports": ["math"]})]
    assert fake_executor.closed and fake_executor.close_calls == 1
    assert "multiply" in fake_executor.namespace
    with pytest.raises(AgentError, match="closed"):
        agent.run("again")


def test_authorized_imports_go_only_to_local(monkeypatch, fake_executor):
    created: list[object] = []

    def fake_create(executor_type, **kwargs):
        created.append((executor_type, kwargs))
        return fake_executor

    monkeypatch.setattr("agent.agent.create_executor", fake_create)
    model = ScriptedModel([code("final_answer(1)")])
    agent = CodeAgent(
        [], model, executor_type="docker", executor_kwargs={"base_url": "http://x"},
        additional_authorized_imports=["numpy"],
    )
    agent.run("t")
    agent.close()
    assert created == [("docker", {"base_url": "http://x"})]
    assert "numpy" not in model.calls[0][0]["content"]


def test_given_executor_is_not_closed(fake_executor):
    agent = CodeAgent([], ScriptedModel([code("final_answer(1)")]), executor=fake_executor)
    agent.run("t")
    agent.close()
    assert not fake_executor.closed


def test_executor_failure_propagates_and_keeps_the_step(fake_executor):
    agent = CodeAgent([], ScriptedModel([code("x = 1")]), executor=fake_executor)
    fake_executor.close()  # every run now raises ExecutorClosedError
    with pytest.raises(SandboxError):
        agent.run("t")
    assert len(agent.steps) == 1 and "executor failure" in (agent.steps[0].error or "")


def test_invalid_max_steps():
    with pytest.raises(AgentError):
        CodeAgent([], ScriptedModel([]), max_steps=0)


def test_step_to_dict_is_json_safe(agent_factory):
    import json

    agent = agent_factory([], ScriptedModel([code("print('hi')\nfinal_answer([1, 2])")]))
    agent.run("t")
    data = json.loads(json.dumps(agent.steps[0].to_dict()))
    assert data["final_answer"] == [1, 2]
    assert data["execution"]["stdout"] == "hi\n"


def test_result_states(agent_factory):
    agent = agent_factory([], ScriptedModel([code("x = 1"), code("final_answer(x)")]))
    for step in agent.run("t", stream=True):
        assert agent.result.state == ("success" if step.is_final_answer else "running")
        if step.is_final_answer:
            break  # stopping at the final step must not turn the run into an error
    assert agent.result.state == "success" and agent.result.answer == 1
    assert agent.result.duration_s > 0

    failing = agent_factory([], ScriptedModel([]))
    with pytest.raises(ModelError):
        failing.run("t")
    assert failing.result.state == "error" and failing.result.answer is None


def test_abandoned_stream_is_an_error(agent_factory):
    agent = agent_factory([], ScriptedModel([code("x = 1"), code("final_answer(x)")]))
    stream = agent.run("t", stream=True)
    next(stream)
    stream.close()
    assert agent.result.state == "error"


def test_result_holds_only_this_runs_steps(agent_factory):
    model = ScriptedModel([code("final_answer(1)"), code("a = 2"), code("final_answer(2)")])
    agent = agent_factory([], model)
    agent.run("first")
    agent.run("second", reset=False)
    assert [s.step_number for s in agent.result.steps] == [2, 3]
    assert [s.step_number for s in agent.steps] == [1, 2, 3]
    assert agent.result.task == "second"


def test_invented_observations_are_cut_from_the_reply(agent_factory):
    # A server that ignores the stop sequence: the model "imagines" the output and goes on.
    reply = code("x = 3") + "\nObservation: x is 3\nThought: done\n" + code("final_answer(x)")
    model = ScriptedModel([reply, code("final_answer(x * 2)")])
    agent = agent_factory([], model)
    assert agent.run("t") == 6
    assert agent.steps[0].code == "x = 3" and not agent.steps[0].is_final_answer
    assert "x is 3" not in model.calls[1][2]["content"]


def test_local_prompt_lists_every_importable_module():
    from executors.local import DEFAULT_AUTHORIZED_IMPORTS

    model = ScriptedModel([code("import math\nimport fractions\nfinal_answer(math.gcd(12, 18))")])
    with CodeAgent([], model, additional_authorized_imports=["fractions"]) as agent:
        assert agent.run("gcd") == 6
    system = model.calls[0][0]["content"]
    line = next(x for x in system.splitlines() if "You may import only" in x)
    for module in [*DEFAULT_AUTHORIZED_IMPORTS, "fractions"]:
        assert module in line


def test_local_unauthorized_import_is_an_observation():
    model = ScriptedModel([code("import os\nos.getcwd()"), code("final_answer('ok')")])
    with CodeAgent([], model) as agent:
        assert agent.run("t") == "ok"
    assert agent.steps[0].error is not None
    assert "os" in model.calls[1][-1]["content"]
    assert "Error:" in model.calls[1][-1]["content"]


def test_minimal_model_protocol_without_stop(agent_factory):
    class Minimal(Model):
        def __init__(self):
            self.seen = 0

        def generate(self, messages):  # the protocol's minimum: no stop parameter
            self.seen += 1
            return code("final_answer('minimal')")

    model = Minimal()
    assert agent_factory([], model).run("t") == "minimal"
    assert model.seen == 1


def test_non_string_reply_is_a_model_error(agent_factory):
    class Broken(Model):
        def generate(self, messages, *, stop=None):
            return None

    with pytest.raises(ModelResponseError, match="NoneType"):
        agent_factory([], Broken()).run("t")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_invalid_max_steps_per_run(agent_factory, bad):
    agent = agent_factory([], ScriptedModel([code("final_answer(1)")]))
    with pytest.raises(AgentError, match="max_steps"):
        agent.run("t", max_steps=bad)
    with pytest.raises(AgentError, match="task"):
        agent.run("   ")


def test_max_steps_per_run_overrides_the_default(agent_factory):
    agent = agent_factory([], ScriptedModel([code("x = 1"), code("final_answer(2)")]), max_steps=5)
    with pytest.raises(AgentMaxStepsError):
        agent.run("t", max_steps=1)


def test_executor_creation_failure_marks_the_run_as_failed(monkeypatch):
    from executors.exceptions import ConfigurationError

    def refuse(executor_type, **kwargs):
        raise ConfigurationError("no such back end")

    monkeypatch.setattr("agent.agent.create_executor", refuse)
    agent = CodeAgent([], ScriptedModel([code("final_answer(1)")]))
    with pytest.raises(ConfigurationError):
        agent.run("t")
    assert agent.result is not None and agent.result.state == "error"
    assert agent.result.task == "t" and agent.steps == []


def test_max_steps_error_carries_only_this_runs_steps(agent_factory):
    model = ScriptedModel([code("final_answer(1)"), code("a = 1"), code("b = 2")])
    agent = agent_factory([], model)
    agent.run("first")
    with pytest.raises(AgentMaxStepsError) as caught:
        agent.run("second", reset=False, max_steps=2)
    assert [s.step_number for s in caught.value.steps] == [2, 3]
