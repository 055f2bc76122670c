"""What a run records: one :class:`ActionStep` per model call, and the :class:`RunResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from executors.models import Execution

__all__ = ["ActionStep", "RunResult", "RunState"]

# "running" until the run ends; "error" when the model or the executor raised.
RunState = Literal["running", "success", "max_steps", "error"]


@dataclass
class ActionStep:
    """One turn of the loop: the model's reply, the code parsed from it and what running it gave.

    ``code`` and ``execution`` are ``None`` when the reply had no code block; ``error`` then says
    so. ``error`` is also set when the code raised or the run timed out; the model sees the same
    information in ``observation``.
    """

    step_number: int
    model_output: str = ""
    code: str | None = None
    execution: Execution | None = None
    observation: str = ""
    error: str | None = None
    duration_s: float = 0.0
    is_final_answer: bool = False
    final_answer: Any = None
    # What the model reported using for this step (OpenAI's "usage"), when it reports it.
    token_usage: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_number": self.step_number,
            "model_output": self.model_output,
            "code": self.code,
            "execution": None if self.execution is None else self.execution.to_dict(),
            "observation": self.observation,
            "error": self.error,
            "duration_s": self.duration_s,
            "is_final_answer": self.is_final_answer,
            "final_answer": self.final_answer,
            "token_usage": self.token_usage,
        }


@dataclass
class RunResult:
    """A run: the answer (``None`` unless ``state == "success"``) and every step so far."""

    task: str
    answer: Any = None
    state: RunState = "running"
    steps: list[ActionStep] = field(default_factory=list)
    duration_s: float = 0.0
