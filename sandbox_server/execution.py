"""Fold the runner's messages for one execution into an :class:`executors.Execution`, and into
the public stream events. I/O-free: the manager feeds it, the routers render it."""

from __future__ import annotations

import time
from typing import Any

from executors.models import STATUSES, Execution, ExecutionError, Result

from .runner.protocol import Msg

__all__ = ["ExecutionBuilder"]

MAX_RESULTS = 64
MAX_RESULT_BYTES = 16 * 1024 * 1024


class ExecutionBuilder:
    """Accumulates one execution. The runner is untrusted: every field is checked and capped."""

    def __init__(self, output_limit_bytes: int) -> None:
        self.output_limit_bytes = output_limit_bytes
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
            if not isinstance(data, dict) or len(self.results) >= MAX_RESULTS:
                return None
            if sum(len(str(v)) for v in data.values()) > MAX_RESULT_BYTES:
                data = {"text/plain": "<result too large to transfer>"}
            bundle = {str(k): v for k, v in data.items()}
            result = Result(bundle, bool(message.get("is_main_result")))
            self.results.append(result)
            return {"type": "result", **result.to_dict()}
        if kind == Msg.ERROR:
            self.error = ExecutionError(
                str(message.get("name", "Error"))[:200],
                str(message.get("value", ""))[:100_000],
                str(message.get("traceback", ""))[:200_000],
            )
            return {"type": "error", **self.error.to_dict()}
        if kind == Msg.FINAL_ANSWER:
            self.is_final_answer = True
            data = message.get("data") if isinstance(message.get("data"), dict) else {}
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
            self.done = True
            count = message.get("execution_count")
            self.execution_count = count if isinstance(count, int) else None
            self.truncated = self.truncated or bool(message.get("truncated"))
            status = message.get("status")
            self.status = status if status in ("ok", "error") else "error"
        return None

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
            if status == "ok":
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
