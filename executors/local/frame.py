"""Runtime frames and control-flow signals shared by the compiled closures."""

from __future__ import annotations

from typing import Any

__all__ = ["BREAK", "CONTINUE", "MISSING", "RETURN", "ClassCell", "Frame"]


class Frame:
    """One activation: ``l`` its namespace, ``up`` the frame of the enclosing function (for
    closures), ``ret`` the returned value, ``cls`` the cell of the class being defined (super())."""

    __slots__ = ("cls", "l", "ret", "up")

    def __init__(self, l: dict[str, Any], up: Frame | None, cls: ClassCell | None) -> None:  # noqa: E741
        self.l = l
        self.up = up
        self.cls = cls
        self.ret: Any = None


class ClassCell:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Any = None


class _Signal:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


BREAK = _Signal("BREAK")
CONTINUE = _Signal("CONTINUE")
RETURN = _Signal("RETURN")
MISSING: Any = _Signal("MISSING")
