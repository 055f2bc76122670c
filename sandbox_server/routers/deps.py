"""Shared FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..auth import require_key
from ..manager import SandboxManager

__all__ = ["Manager", "Owner"]


async def _manager(request: Request) -> SandboxManager:
    manager: SandboxManager = request.app.state.manager
    return manager


Manager = Annotated[SandboxManager, Depends(_manager)]
Owner = Annotated[str, Depends(require_key)]
