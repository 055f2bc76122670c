"""The record of one sandbox, as the lifecycle manager keeps it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from .channel import RunnerChannel
from .network.policy import EgressPolicy

__all__ = ["Limits", "Sandbox", "SandboxState"]

SandboxState = Literal["starting", "running", "paused", "dead", "expired"]


@dataclass(frozen=True)
class Limits:
    cpu: float
    memory_mb: int
    pids: int
    disk_mb: int
    network: str


@dataclass(eq=False)
class Sandbox:
    id: str
    owner: str
    template: str
    limits: Limits
    metadata: dict[str, str]
    env: dict[str, str]
    created_at: float
    expires_at: float
    container_id: str = ""
    state: SandboxState = "starting"
    end_reason: str = ""
    ended_at: float | None = None
    channel: RunnerChannel | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    execution_count: int = 0
    tool_calls: set[str] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)
    egress: EgressPolicy | None = None  # with network "egress": what it may reach

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "running", "paused")

    @property
    def timeout_s(self) -> float:
        return max(self.expires_at - time.time(), 0.0)
