"""The data every back end returns: :class:`Execution` and its parts.

Plain dataclasses, JSON-safe by construction: values cross process and network boundaries as
JSON (and base64 strings for binary MIME types), never as pickles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = [
    "STATUSES",
    "Execution",
    "ExecutionError",
    "ExecutionStatus",
    "Result",
    "SandboxSpec",
]

ExecutionStatus = Literal[
    "ok", "error", "timeout", "oom_killed", "output_truncated", "sandbox_died", "interrupted"
]
STATUSES: tuple[str, ...] = get_args(ExecutionStatus)

# Short names (E2B's, and what users type) for the MIME types a result bundle may hold.
_SHORT_NAMES = {
    "text": "text/plain",
    "html": "text/html",
    "markdown": "text/markdown",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "pdf": "application/pdf",
    "latex": "text/latex",
    "json": "application/json",
    "javascript": "application/javascript",
}


@dataclass
class SandboxSpec:
    """What a sandbox is asked to be; ``None`` means the server's default.

    The ``docker`` executor sends it, and the sandbox server receives it, as the body of
    ``POST /v1/sandboxes``.
    """

    template: str | None = None
    cpu: float | None = None
    memory_mb: int | None = None
    pids: int | None = None
    disk_mb: int | None = None
    timeout_s: float | None = None
    network: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    # Egress policy, E2B's ``network`` object: allow_out, deny_out, rules, dns_servers
    # (and allow_internet_access); the sandbox then reaches only what it allows, through the
    # deployment's egress gateway. See docs/network.md.
    egress: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body of a create request: only what was asked for."""
        body: dict[str, Any] = {
            name: getattr(self, name)
            for name in ("template", "cpu", "memory_mb", "pids", "disk_mb", "timeout_s",
                         "network")
            if getattr(self, name) is not None
        }
        if self.env:
            body["env"] = {str(k): str(v) for k, v in self.env.items()}
        if self.metadata:
            body["metadata"] = {str(k): str(v) for k, v in self.metadata.items()}
        if self.egress is not None:
            body["egress"] = dict(self.egress)
        return body


@dataclass
class ExecutionError:
    """An exception raised by user code: its class name, message and formatted traceback."""

    name: str
    value: str
    traceback: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value, "traceback": self.traceback}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionError:
        return cls(str(data["name"]), str(data.get("value", "")), str(data.get("traceback", "")))

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


@dataclass
class Result:
    """One displayed value as a MIME bundle (``{"text/plain": "2", "image/png": "<base64>"}``).

    ``is_main_result`` marks the value of the cell's last expression, as opposed to a value shown
    during the run (a matplotlib figure, for instance).
    """

    data: dict[str, Any]
    is_main_result: bool = True

    def __getattr__(self, name: str) -> Any:
        # result.text, result.html, result.png, ... read the bundle by short name.
        mime = _SHORT_NAMES.get(name)
        if mime is None:
            raise AttributeError(name)
        return self.data.get(mime)

    def formats(self) -> list[str]:
        """The MIME types present in the bundle."""
        return list(self.data)

    def to_dict(self) -> dict[str, Any]:
        return {"data": dict(self.data), "is_main_result": self.is_main_result}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(dict(data.get("data", {})), bool(data.get("is_main_result", True)))


@dataclass
class Execution:
    """What running one piece of code produced. User-code failure is data (``error``)."""

    stdout: str = ""
    stderr: str = ""
    results: list[Result] = field(default_factory=list)
    error: ExecutionError | None = None
    status: ExecutionStatus = "ok"
    duration_s: float = 0.0
    execution_count: int | None = None
    is_final_answer: bool = False
    final_answer: Any = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def main_result(self) -> Result | None:
        for result in self.results:
            if result.is_main_result:
                return result
        return None

    @property
    def text(self) -> str | None:
        """The ``text/plain`` form of the last expression's value, if there was one."""
        main = self.main_result
        return None if main is None else main.data.get("text/plain")

    def to_dict(self) -> dict[str, Any]:
        return {
            "stdout": self.stdout,
            "stderr": self.stderr,
            "results": [r.to_dict() for r in self.results],
            "error": None if self.error is None else self.error.to_dict(),
            "status": self.status,
            "duration_s": self.duration_s,
            "execution_count": self.execution_count,
            "is_final_answer": self.is_final_answer,
            "final_answer": self.final_answer,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Execution:
        status = data.get("status", "ok")
        if status not in STATUSES:
            raise ValueError(f"unknown execution status {status!r}; expected one of {STATUSES}")
        error = data.get("error")
        return cls(
            stdout=str(data.get("stdout", "")),
            stderr=str(data.get("stderr", "")),
            results=[Result.from_dict(r) for r in data.get("results", [])],
            error=None if error is None else ExecutionError.from_dict(error),
            status=status,
            duration_s=float(data.get("duration_s", 0.0)),
            execution_count=data.get("execution_count"),
            is_final_answer=bool(data.get("is_final_answer", False)),
            final_answer=data.get("final_answer"),
        )
