"""The text the model reads: the system prompt, and observations built from executions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from executors.models import Execution

from .tools import Tool

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "NO_CODE_OBSERVATION",
    "format_observation",
    "render_system_prompt",
    "truncate",
]

DEFAULT_SYSTEM_PROMPT = """\
You are an expert assistant who solves tasks by writing Python code.
At each step, first explain your reasoning in a line starting with "Thought:", then write one \
block of Python code:

```python
# your code here
```

The code runs in a persistent Python session: variables, imports and functions you define stay \
available in the next steps. Use print() to see intermediate values; what you print, and the \
value of the block's last expression, come back to you as an "Observation:" in the next message.
When you have the answer, call final_answer(answer) in a code block; this ends the task.

Rules:
- Always write a code block; replies without one are not executed.
- Do not invent observations: stop after your code block and wait for the real one.
- If the code fails, read the error and fix it; do not repeat the same mistake.
- Only call the tools listed below with the arguments they document.
{imports}
You can call these Python functions (tools) in your code:

```python
{tools}def final_answer(answer: any) -> None:
    \"\"\"Ends the task and returns answer as its result.\"\"\"
```
{instructions}"""

NO_CODE_OBSERVATION = """\
Error: your reply contained no code block, so nothing was run.
Reply with a line "Thought: ..." followed by Python code in this format:

```python
# your code here
```

To finish, call final_answer(answer) inside the code block."""


def render_system_prompt(
    tools: Mapping[str, Tool],
    *,
    authorized_imports: Iterable[str] | None = None,
    extra_imports: Iterable[str] | None = None,
    instructions: str | None = None,
    template: str = DEFAULT_SYSTEM_PROMPT,
) -> str:
    """Fill the template's ``{tools}``, ``{imports}`` and ``{instructions}`` fields.

    ``authorized_imports`` is the complete list of importable modules, when the executor can
    tell; ``extra_imports`` the ones allowed on top of its defaults, when it cannot.
    """
    rendered_tools = "\n\n".join(t.describe() for t in tools.values())
    imports = ""
    if authorized_imports is not None:
        names = sorted(set(authorized_imports))
        if "*" in names:
            imports = "- You may import any installed module.\n"
        else:
            listed = ", ".join(names) or "(none)"
            imports = f"- You may import only these modules: {listed}.\n"
    elif extra_imports:
        listed = ", ".join(sorted(set(extra_imports)))
        imports = f"- Besides the standard modules the sandbox allows, you may import: {listed}.\n"
    extra = f"\n{instructions.strip()}\n" if instructions else ""
    return template.format(
        tools=rendered_tools + ("\n\n" if rendered_tools else ""),
        imports=imports,
        instructions=extra,
    )


def truncate(text: str, limit: int) -> str:
    """Keep the head and the tail of ``text`` within about ``limit`` characters, marking the cut."""
    if limit <= 0 or len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters truncated ...]\n{text[-tail:]}"


def _traceback_tail(traceback: str, error_line: str, lines: int) -> str:
    """The last ``lines`` lines of the traceback, without what the observation already says."""
    kept = [line for line in traceback.rstrip().splitlines() if line.strip()]
    if kept and kept[0].startswith("Traceback (most recent call last)"):
        kept = kept[1:]
    if kept and kept[-1].strip() == error_line:
        kept = kept[:-1]
    if len(kept) > lines:
        kept = ["  ...", *kept[-lines:]]
    return "\n".join(kept)


_STATUS_NOTES = {
    "timeout": "Error: the code was stopped because it ran longer than the time limit. "
    "Make it faster, or split the work into smaller steps.",
    "oom_killed": "Error: the code was stopped because it used more memory than allowed.",
    "sandbox_died": "Error: the sandbox running the code died; variables defined so far are lost.",
    "output_truncated": "Note: the output was too large and was cut by the executor.",
    "interrupted": "Note: the sandbox server restarted while this code ran; the output shown "
    "is what it produced, and variables are kept.",
}


def format_observation(
    execution: Execution,
    *,
    max_chars: int = 10_000,
    traceback_lines: int = 8,
) -> str:
    """Describe an execution for the model, every part under a clear heading.

    ``max_chars`` bounds each of the logs and the result separately, so that a flood of prints
    cannot hide the error that follows it.
    """
    parts: list[str] = []
    logs = execution.stdout
    if execution.stderr.strip():
        logs = f"{logs}{'' if not logs or logs.endswith(chr(10)) else chr(10)}{execution.stderr}"
    if logs.strip():
        parts.append("Execution logs:\n" + truncate(logs.rstrip("\n"), max_chars))
    if execution.error is not None:
        error = execution.error
        text = f"Error: {error.name}: {error.value}"
        tail = _traceback_tail(error.traceback, f"{error.name}: {error.value}", traceback_lines)
        if tail:
            text += "\nTraceback (most recent call last):\n" + truncate(tail, max_chars)
        parts.append(text)
    note = _STATUS_NOTES.get(execution.status)
    if note:
        parts.append(note)
    if execution.is_final_answer:
        parts.append("Final answer: " + truncate(repr(execution.final_answer), max_chars))
    elif execution.error is None and execution.text is not None:
        parts.append("Last output from code snippet:\n" + truncate(execution.text, max_chars))
    if not parts:
        parts.append("The code ran without output (nothing printed, no value).")
    if execution.error is not None:
        parts.append("Fix the error and try again; do not repeat the same mistake.")
    return "\n\n".join(parts)
