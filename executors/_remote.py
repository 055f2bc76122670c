"""I/O-free helpers shared by the remote back ends (``docker`` and ``e2b``), sync and async.

Request building, NDJSON event folding, tool-call answers and HTTP error mapping live here, so
that :mod:`executors.docker`'s two clients differ only in how they do I/O.

Values cross as JSON, never as pickles, and the sandbox can make the host run only the tools the
host registered, looked up by exact name.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import (
    ConfigurationError,
    SandboxError,
    ServerError,
    ToolError,
    exception_for_status,
)
from .models import Execution, SandboxSpec

__all__ = [
    "Callbacks",
    "EventFolder",
    "SandboxSpec",
    "ToolCall",
    "check_json",
    "error_for_status",
    "is_json_data",
    "resolve_setting",
    "tool_error_reply",
    "tool_value_reply",
]

EventCallback = Callable[[dict[str, Any]], Any]
TextCallback = Callable[[str], Any]


def resolve_setting(value: str | None, env_name: str, what: str) -> str:
    """``value``, else the environment variable, else a :class:`ConfigurationError` naming both."""
    resolved = value if value else os.environ.get(env_name, "")
    if not resolved:
        raise ConfigurationError(
            f"no {what}: pass {what.replace(' ', '_')}=... or set the {env_name} environment "
            "variable"
        )
    return resolved


# -- JSON ---------------------------------------------------------------------------------------
def is_json_data(value: Any, _depth: int = 0) -> bool:
    """True when ``value`` is plain JSON data: None, bool, int, finite float, str, and lists,
    tuples and str-keyed dicts of those. No custom classes: they would need pickle."""
    if _depth > 100:
        return False
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, int):
        return type(value) is int
    if isinstance(value, float):
        return type(value) is float and math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(is_json_data(item, _depth + 1) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and is_json_data(item, _depth + 1) for key, item in value.items()
        )
    return False


def check_json(values: Mapping[str, Any], what: str) -> None:
    """Raise :class:`ConfigurationError` naming the first value that is not JSON data."""
    for name, value in values.items():
        if not is_json_data(value):
            raise ConfigurationError(
                f"{what} {name!r} is a {type(value).__name__}, which cannot cross to a remote "
                "sandbox: only JSON data (None, bool, int, float, str, list, dict with str keys) "
                "is sent, never pickles"
            )


# -- errors -------------------------------------------------------------------------------------


def error_for_status(status: int, body: bytes | str, *, action: str = "") -> SandboxError:
    """The exception for an HTTP error answer (``{"code", "error_code", "message"}`` body)."""
    message, error_code, details = "", "", {}
    try:
        parsed = json.loads(body)
    except (ValueError, TypeError):
        parsed = None
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or parsed.get("detail") or "")
        error_code = str(parsed.get("error_code") or "")
        if isinstance(parsed.get("details"), dict):
            details = parsed["details"]
    elif body:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        message = text.strip()[:500]
    cls = exception_for_status(status)
    prefix = f"{action} failed: " if action else ""
    text = f"{prefix}HTTP {status}" + (f" ({error_code})" if error_code else "")
    if message:
        text += f": {message}"
    return cls(text, status=status, error_code=error_code, **details)


# -- sandbox creation ---------------------------------------------------------------------------
def execute_body(code: str, timeout_s: float | None) -> dict[str, Any]:
    if not isinstance(code, str):
        raise ConfigurationError(f"code must be a str, not {type(code).__name__}")
    if timeout_s is not None and not timeout_s > 0:
        raise ConfigurationError(f"timeout_s must be positive, got {timeout_s!r}")
    body: dict[str, Any] = {"code": code}
    if timeout_s is not None:
        body["timeout_s"] = float(timeout_s)
    return body


# -- tool calls ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolCall:
    """A ``tool_call`` event: the sandbox asks the host to run a registered tool."""

    call_id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> ToolCall:
        args = event.get("args")
        kwargs = event.get("kwargs")
        return cls(
            call_id=str(event.get("call_id", "")),
            name=str(event.get("name", "")),
            args=list(args) if isinstance(args, list) else [],
            kwargs={str(k): v for k, v in kwargs.items()} if isinstance(kwargs, dict) else {},
        )

    def lookup(self, tools: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
        """The registered tool of exactly this name; :class:`ToolError` if there is none."""
        tool = tools.get(self.name) if isinstance(self.name, str) else None
        if tool is None:
            raise ToolError(f"no tool named {self.name!r} is registered on the host")
        return tool


def tool_value_reply(name: str, value: Any) -> dict[str, Any]:
    """The answer for a tool that returned ``value`` (an error answer if it is not JSON)."""
    if not is_json_data(value):
        return {
            "ok": False,
            "error": {
                "name": "TypeError",
                "value": f"tool {name!r} returned a {type(value).__name__}; tool results cross "
                "as JSON data only",
            },
        }
    return {"ok": True, "value": value}


def tool_error_reply(exc: BaseException) -> dict[str, Any]:
    """The answer for a tool that raised: the sandbox code sees a ``ToolCallError``."""
    try:
        text = str(exc)
    except Exception:
        text = f"<{type(exc).__name__} with an unprintable message>"
    return {"ok": False, "error": {"name": type(exc).__name__, "value": text[:10_000]}}


# -- event folding ------------------------------------------------------------------------------
@dataclass
class Callbacks:
    """Optional observers of a run's events, called as they arrive."""

    on_event: EventCallback | None = None
    on_stdout: TextCallback | None = None
    on_stderr: TextCallback | None = None

    def dispatch(self, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(event)
        kind = event.get("type")
        text = event.get("text")
        if kind == "stdout" and self.on_stdout is not None and isinstance(text, str):
            self.on_stdout(text)
        elif kind == "stderr" and self.on_stderr is not None and isinstance(text, str):
            self.on_stderr(text)


class EventFolder:
    """Reads the ``/execute/stream`` NDJSON lines; the final ``execution`` event is the answer.

    :meth:`feed` returns a :class:`ToolCall` when the caller must answer one, else ``None``.
    """

    def __init__(self, callbacks: Callbacks | None = None) -> None:
        self.callbacks = callbacks or Callbacks()
        self.execution: Execution | None = None
        self.seen_start = False
        self.execution_id: str | None = None  # to ask for the result if the stream breaks

    def feed_line(self, line: str | bytes) -> ToolCall | None:
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        line = line.strip()
        if not line:
            return None
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise ServerError(f"malformed event in the execution stream: {line[:200]!r}") from exc
        if not isinstance(event, dict):
            raise ServerError(f"malformed event in the execution stream: {line[:200]!r}")
        return self.feed(event)

    def feed(self, event: dict[str, Any]) -> ToolCall | None:
        kind = event.get("type")
        if kind == "start":
            self.seen_start = True
            if isinstance(event.get("execution_id"), str):
                self.execution_id = event["execution_id"]
        elif kind == "execution":
            self.execution = _execution(event.get("execution"), "execution in the stream")
        if kind != "keepalive":
            self.callbacks.dispatch(event)
        if kind == "tool_call":
            return ToolCall.from_event(event)
        return None

    @property
    def done(self) -> bool:
        return self.execution is not None

    def recovered(self, payload: object) -> Execution:
        """The answer of ``GET .../executions/{id}`` after the stream broke."""
        self.execution = _execution(payload, "interrupted execution")
        return self.execution

    def result(self) -> Execution:
        if self.execution is None:
            raise ServerError("the execution stream ended without its final execution event")
        return self.execution


def _execution(payload: object, what: str) -> Execution:
    """An execution from the server's JSON; anything else is the server's fault."""
    if not isinstance(payload, dict):
        raise ServerError(f"malformed {what}")
    try:
        return Execution.from_dict(payload)
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerError(f"malformed {what}: {exc}") from exc
