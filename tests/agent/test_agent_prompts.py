"""Observations built from executions, and the system prompt."""

from __future__ import annotations

from agent import DEFAULT_SYSTEM_PROMPT, format_observation, tool
from agent.prompts import render_system_prompt, truncate
from executors.models import Execution, ExecutionError, Result


def test_logs_and_result_are_marked():
    execution = Execution(stdout="hello\n", results=[Result({"text/plain": "42"})])
    text = format_observation(execution)
    assert text == "Execution logs:\nhello\n\nLast output from code snippet:\n42"


def test_stderr_is_part_of_the_logs():
    text = format_observation(Execution(stdout="out\n", stderr="warning!\n"))
    assert text == "Execution logs:\nout\nwarning!"


def test_error_shows_name_message_and_traceback_tail():
    tb = "Traceback (most recent call last):\n" + "\n".join(f"  line {i}" for i in range(30))
    tb += "\nKeyError: 'k'"
    execution = Execution(
        stdout="partial\n", error=ExecutionError("KeyError", "'k'", tb), status="error",
        results=[Result({"text/plain": "ignored"})],
    )
    text = format_observation(execution, traceback_lines=3)
    assert "Execution logs:\npartial" in text
    assert "Error: KeyError: 'k'" in text
    assert "line 27" in text and "line 29" in text and "line 26" not in text  # only the tail
    assert "  ...\n  line 27" in text
    assert text.count("KeyError: 'k'") == 1  # the last line repeats the error: dropped
    assert text.count("Traceback (most recent call last)") == 1
    assert "ignored" not in text  # no stale result next to an error
    assert text.rstrip().endswith("do not repeat the same mistake.")


def test_timeout_and_died_statuses_are_explained():
    assert "time limit" in format_observation(Execution(status="timeout"))
    assert "lost" in format_observation(Execution(status="sandbox_died"))
    assert "memory" in format_observation(Execution(status="oom_killed"))


def test_final_answer_and_silent_code():
    assert "Final answer: [1, 2]" in format_observation(
        Execution(is_final_answer=True, final_answer=[1, 2])
    )
    assert "without output" in format_observation(Execution())


def test_truncate_keeps_head_and_tail():
    text = "H" * 100 + "T" * 100
    cut = truncate(text, 20)
    assert cut.startswith("H" * 10) and cut.endswith("T" * 10)
    assert "[... 180 characters truncated ...]" in cut
    assert truncate("short", 20) == "short"
    assert truncate("x" * 50, 0) == "x" * 50  # 0 disables truncation


def test_system_prompt_lists_imports():
    @tool
    def noop() -> None:
        """Do nothing."""

    full = render_system_prompt({"noop": noop}, authorized_imports=["math", "json"])
    assert "You may import only these modules: json, math." in full
    extra = render_system_prompt({}, extra_imports=["numpy"])
    assert "you may import: numpy" in extra
    assert "import" not in render_system_prompt({}).split("Rules:")[1].split("You can call")[0]
    assert "def noop() -> null:" in full


def test_default_template_fields():
    for field in ("{tools}", "{imports}", "{instructions}"):
        assert field in DEFAULT_SYSTEM_PROMPT


def test_wildcard_import():
    assert "any installed module" in render_system_prompt({}, authorized_imports=["*", "x"])
