"""Pydantic models of the ``/v1`` HTTP API (the only place pydantic is used)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .sandbox import Sandbox

__all__ = [
    "CreateSandbox",
    "EgressUpdate",
    "ExecuteRequest",
    "ExecutionOut",
    "SandboxOut",
    "SetTimeout",
    "ToolReply",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSandbox(_Strict):
    template: str | None = Field(None, description="Runtime image; the server's default if unset.",
                                 max_length=256)
    cpu: float | None = Field(None, gt=0, description="CPU cores (may be fractional).")
    memory_mb: int | None = Field(None, gt=0, description="Memory cap, MiB (no swap beyond it).")
    pids: int | None = Field(None, gt=0, description="Max processes and threads.")
    disk_mb: int | None = Field(None, gt=0, description="Writable space per writable dir, MiB.")
    timeout_s: float | None = Field(None, gt=0, description="Lifetime, seconds.")
    network: Literal["none", "bridge", "egress"] | None = Field(
        None, description="none (the default), bridge (if the server allows it) or egress "
        "(the policy in `egress`; implied by it).")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables.")
    metadata: dict[str, str] = Field(default_factory=dict, description="Free labels.")
    egress: dict[str, Any] | None = Field(
        None, description="Egress policy (E2B's network object): allow_out, deny_out (IPs, "
        "CIDRs, domains exact or *.), rules (header transforms), allow_internet_access. "
        "The sandbox joins the deployment's egress gateway; see docs/network.md.")


class EgressUpdate(_Strict):
    allow_out: list[str] | None = None
    deny_out: list[str] | None = None
    rules: dict[str, Any] | None = None
    dns_servers: list[str] | None = None
    allow_internet_access: bool | None = None


class SandboxOut(BaseModel):
    id: str
    template: str
    state: str
    cpu: float
    memory_mb: int
    pids: int
    disk_mb: int
    network: str
    created_at: datetime
    expires_at: datetime
    timeout_s: float = Field(description="Seconds of lifetime left.")
    execution_count: int
    metadata: dict[str, str]
    end_reason: str | None = None
    egress: dict[str, Any] | None = None

    @classmethod
    def of(cls, sandbox: Sandbox) -> SandboxOut:
        return cls(
            id=sandbox.id, template=sandbox.template, state=sandbox.state,
            cpu=sandbox.limits.cpu, memory_mb=sandbox.limits.memory_mb,
            pids=sandbox.limits.pids, disk_mb=sandbox.limits.disk_mb,
            network=sandbox.limits.network,
            created_at=datetime.fromtimestamp(sandbox.created_at, UTC),
            expires_at=datetime.fromtimestamp(sandbox.expires_at, UTC),
            timeout_s=round(sandbox.timeout_s, 3), execution_count=sandbox.execution_count,
            metadata=sandbox.metadata, end_reason=sandbox.end_reason or None,
            egress=sandbox.egress.to_wire() if sandbox.egress is not None else None,
        )


class SetTimeout(_Strict):
    timeout_s: float = Field(gt=0, description="New lifetime from now, seconds.")


class ExecuteRequest(_Strict):
    code: str = Field(description="Python source to run.")
    timeout_s: float | None = Field(None, gt=0, description="Execution timeout, seconds.")
    context: str = Field("default", max_length=128, description="Namespace to run in.")


class ResultOut(BaseModel):
    data: dict[str, Any] = Field(description='MIME bundle: "text/plain", "text/html", '
                                 '"image/png" (base64), "application/json", ...')
    is_main_result: bool


class ErrorOut(BaseModel):
    name: str
    value: str
    traceback: str


class ExecutionOut(BaseModel):
    stdout: str
    stderr: str
    results: list[ResultOut]
    error: ErrorOut | None
    status: Literal["ok", "error", "timeout", "oom_killed", "output_truncated", "sandbox_died",
                    "interrupted"]
    duration_s: float
    execution_count: int | None
    is_final_answer: bool
    final_answer: Any = None


class ToolReply(_Strict):
    ok: bool = True
    value: Any = None
    error: dict[str, str] | None = None
