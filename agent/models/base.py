"""The model protocol the agent calls."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from types import TracebackType
from typing import Literal, Self, TypedDict

__all__ = ["ChatMessage", "Model", "Role"]

Role = Literal["system", "user", "assistant"]


class ChatMessage(TypedDict):
    """One chat message, in the OpenAI chat-completions shape."""

    role: Role
    content: str


class Model(abc.ABC):
    """Turns a conversation into the assistant's next reply.

    ``stop`` lists strings at which generation should end (the agent passes ``"Observation:"``
    so that the model does not invent the result of its own code); a model that cannot honour
    them may ignore them.
    """

    @abc.abstractmethod
    def generate(
        self, messages: Sequence[ChatMessage], *, stop: Sequence[str] | None = None
    ) -> str:
        """Return the assistant's reply to ``messages``."""

    def close(self) -> None:  # noqa: B027 - optional hook: most models hold no resources
        """Release the model's resources (an HTTP connection pool). Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.close()
