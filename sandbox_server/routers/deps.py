"""Shared FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ..auth import require_key
from ..idempotency import HEADER, IdempotencyStore
from ..manager import SandboxManager

__all__ = ["IdempotencyKey", "Idempotent", "Manager", "Owner"]


async def _manager(request: Request) -> SandboxManager:
    manager: SandboxManager = request.app.state.manager
    return manager


Manager = Annotated[SandboxManager, Depends(_manager)]
Owner = Annotated[str, Depends(require_key)]


async def _idempotency(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.idempotency
    return store


Idempotent = Annotated[IdempotencyStore, Depends(_idempotency)]
IdempotencyKey = Annotated[str | None, Header(alias=HEADER, description="the same key and "
                                              "body within the window: the same sandbox")]
