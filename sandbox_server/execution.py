"""Fold the runner's messages for one execution into an :class:`executors.Execution`, and into
the public stream events. I/O-free: the manager feeds it, the routers render it."""

from __future__ import annotations

import time
from typing import Any

from executors.models import STATUSES, Execution, ExecutionError, Result

from .runner.protocol import Msg

__all__ = ["ExecutionBuilder"]

MAX_RESULTS = 64
DEFAULT_RESULT_LIMIT_BYTES = 16 * 1024 * 1024


def _bundle_bytes(data: dict[str, Any]) -> int:
    # Strings by length (what rendering them costs); anything else by its repr.
    return sum(len(v) if isinstance(v, str) else len(repr(v)) for v in data.values())


class ExecutionBuilder:
    """Accumulates one execution. The runner is untrusted: every field is checked and capped.

    ``token`` is the secret sent with the execute op: only a ``done`` that carries it ends
    the execution (other code in the sandbox can write frames to the channel too). None: a
    runner too old to echo it (its hello says so), whose ``done`` is taken as is."""

    def __init__(self, output_limit_bytes: int,
                 result_limit_bytes: int = DEFAULT_RESULT_LIMIT_BYTES,
                 token: str | None = None) -> None:
        self.output_limit_bytes = output_limit_bytes
        self.result_limit_bytes = result_limit_bytes
        self.result_bytes = 0
        self.results_truncated = False
        self.token = token
        self.started = time.monotonic()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.output_bytes = 0
        self.truncated = False
        self.results: list[Result] = []
        self.error: ExecutionError | None = None
        self.status: str | None = None
        self.execution_count: int | None = None
        self.is_final_answer = False
        self.final_answer: Any = None
        self.done = False

    def feed(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Take one runner message; return the public event to stream, if any."""
        kind = message.get("type")
        if kind == Msg.STREAM:
            return self._stream(message)
        if kind == Msg.RESULT:
            data = message.get("data")
            if not isinstance(data, dict) or not self._room(data):
                return None
            bundle = {str(k): v for k, v in data.items()}
            result = Result(bundle, bool(message.get("is_main_result")))
            self.results.append(result)
            return {"type": "result", **result.to_dict()}
        if kind == Msg.ERROR:
            if self.error is not None:  # one error per execution; more would be forged
                return None
            self.error = ExecutionError(
                str(message.get("name", "Error"))[:200],
                str(message.get("value", ""))[:100_000],
                str(message.get("traceback", ""))[:200_000],
            )
            return {"type": "error", **self.error.to_dict()}
        if kind == Msg.FINAL_ANSWER:
            raw = message.get("data")
            data = raw if isinstance(raw, dict) else {}
            if self.is_final_answer or not self._room({"value": repr(message.get("value")),
                                                       **data}):
                return None
            self.is_final_answer = True
            self.final_answer = (
                message.get("value") if message.get("is_json") else (data or {}).get("text/plain")
            )
            return {"type": "final_answer", "value": self.final_answer}
        if kind == Msg.TOOL_CALL:
            return {
                "type": "tool_call",
                "call_id": str(message.get("call_id")),
                "name": str(message.get("name")),
                "args": message.get("args") if isinstance(message.get("args"), list) else [],
                "kwargs": message.get("kwargs") if isinstance(message.get("kwargs"), dict) else {},
            }
        if kind == Msg.DONE:
            if not self.is_own_done(message):
                return None  # forged: the runner's own "done" carries the token
            self.done = True
            self.results_truncated = (self.results_truncated
                                      or bool(message.get("results_truncated")))
            count = message.get("execution_count")
            self.execution_count = count if isinstance(count, int) else None
            self.truncated = self.truncated or bool(message.get("truncated"))
            status = message.get("status")
            self.status = status if status in ("ok", "error") else "error"
        return None

    def is_own_done(self, message: dict[str, Any]) -> bool:
        """Whether a ``done`` is the runner's own (it carries the execute op's token)."""
        return message.get("type") == Msg.DONE and (
            self.token is None or message.get("token") == self.token)

    def wants(self, kind: str) -> bool:
        """Whether a large frame of this kind could still be used: past a budget, the
        channel drops such frames without parsing them."""
        if kind in (Msg.RESULT, Msg.FINAL_ANSWER):
            return not self.results_truncated
        if kind == Msg.STREAM:
            return not self.truncated
        return True

    def _room(self, data: dict[str, Any]) -> bool:
        """Spend the result budget (bytes, and a count) on one bundle, if it fits."""
        size = _bundle_bytes(data)
        if (self.results_truncated or len(self.results) >= MAX_RESULTS
                or self.result_bytes + size > self.result_limit_bytes):
            self.results_truncated = True
            return False
        self.result_bytes += size
        return True

    def _stream(self, message: dict[str, Any]) -> dict[str, Any] | None:
        name = message.get("name")
        text = message.get("text")
        if name not in ("stdout", "stderr") or not isinstance(text, str) or self.truncated:
            return None
        size = len(text.encode("utf-8", "replace"))
        if self.output_bytes + size > self.output_limit_bytes:
            room = max(self.output_limit_bytes - self.output_bytes, 0)
            text = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            self.truncated = True
        self.output_bytes += size
        (self.stdout if name == "stdout" else self.stderr).append(text)
        return {"type": name, "text": text} if text else None

    def fail(self, status: str, name: str, value: str) -> dict[str, Any]:
        """End the execution from the server's side (timeout, OOM, a dead sandbox)."""
        assert status in STATUSES
        self.status = status
        self.error = ExecutionError(name, value, "")
        self.done = True
        return {"type": "error", **self.error.to_dict()}

    def build(self) -> Execution:
        status = self.status or "sandbox_died"
        stdout = "".join(self.stdout)
        if self.truncated:
            stdout += (f"\n[output truncated: more than {self.output_limit_bytes} bytes "
                       "(output_limit_bytes)]\n")
        if self.results_truncated:
            stdout += (f"\n[results truncated: more than {MAX_RESULTS} results or "
                       f"{self.result_limit_bytes} bytes of them (result_limit_bytes)]\n")
        if (self.truncated or self.results_truncated) and status == "ok":
            status = "output_truncated"
        return Execution(
            stdout=stdout,
            stderr="".join(self.stderr),
            results=self.results,
            error=self.error,
            status=status,  # type: ignore[arg-type]
            duration_s=round(time.monotonic() - self.started, 6),
            execution_count=self.execution_count,
            is_final_answer=self.is_final_answer,
            final_answer=self.final_answer,
        )
