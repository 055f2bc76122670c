"""A model that replays canned replies: for tests, offline demos and reproducible examples."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

from ..exceptions import ModelError
from .base import ChatMessage, Model

__all__ = ["ScriptedModel"]

Responder = Callable[[list[ChatMessage]], str]


class ScriptedModel(Model):
    """Answers from a list of replies (one per call, in order) or from a callable.

    Every call's messages are recorded in :attr:`calls` (deep copies, so later changes to the
    conversation do not rewrite history). Running out of replies raises :class:`ModelError`,
    as a real model failure would.
    """

    def __init__(self, replies: Iterable[str] | Responder) -> None:
        self._responder: Responder | None = None
        self._replies: list[str] = []
        if callable(replies):
            self._responder = replies
        else:
            self._replies = [str(r) for r in replies]
        self.calls: list[list[ChatMessage]] = []
        self.stops: list[list[str] | None] = []

    @property
    def remaining(self) -> int:
        """How many canned replies are left (0 for a callable)."""
        return len(self._replies) - len(self.calls) if self._responder is None else 0

    @property
    def last_messages(self) -> list[ChatMessage]:
        """The messages of the latest call."""
        if not self.calls:
            raise IndexError("the model has not been called yet")
        return self.calls[-1]

    def generate(
        self, messages: Sequence[ChatMessage], *, stop: Sequence[str] | None = None
    ) -> str:
        seen = copy.deepcopy(list(messages))
        index = len(self.calls)
        self.calls.append(seen)
        self.stops.append(None if stop is None else list(stop))
        if self._responder is not None:
            return str(self._responder(copy.deepcopy(seen)))
        if index >= len(self._replies):
            raise ModelError(f"ScriptedModel ran out of replies after {len(self._replies)} calls")
        return self._replies[index]
