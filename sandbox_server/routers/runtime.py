"""``/v1/sandboxes/{id}/tools`` and ``/variables``: set up the runner's namespace.

Tools are registered by name only: the sandbox gets a proxy per name that asks the client
(over the execute stream's ``tool_call`` events) to run the real callable on its side.
Variables are JSON values, defined in a context's namespace.
"""

from __future__ import annotations

import contextlib
import keyword
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from ..exceptions import InvalidRequest, RunnerOpError
from ..runner.protocol import ErrorCode, Op
from .deps import Manager, Owner

router = APIRouter(prefix="/v1/sandboxes/{sandbox_id}", tags=["runtime"])

RESERVED = frozenset({"final_answer"})


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=128, description="A Python identifier.")
    description: str = Field("", max_length=10_000, description="The proxy's docstring.")


class SetTools(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tools: list[ToolSpec] = Field(max_length=256)


class SetVariables(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variables: dict[str, Any]
    context: str = Field("default", max_length=128)


def check_identifier(kind: str, name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise InvalidRequest(f"{kind} name {name!r} is not a valid Python identifier")
    if name.startswith("__") or name in RESERVED:
        raise InvalidRequest(f"{kind} name {name!r} is reserved")


@router.put("/tools", status_code=204, summary="Register host tools callable from code")
async def set_tools(sandbox_id: str, body: SetTools, owner: Owner, manager: Manager) -> Response:
    sandbox = manager.get(owner, sandbox_id)
    for tool in body.tools:
        check_identifier("tool", tool.name)
    with _refused():
        await manager.gateway.request(sandbox, Op.SET_TOOLS,
                                      tools=[t.model_dump() for t in body.tools])
    return Response(status_code=204)


@router.put("/variables", status_code=204, summary="Define JSON variables in a context")
async def set_variables(sandbox_id: str, body: SetVariables, owner: Owner,
                        manager: Manager) -> Response:
    sandbox = manager.get(owner, sandbox_id)
    for name in body.variables:
        check_identifier("variable", name)
    with _refused():
        await manager.gateway.request(sandbox, Op.SET_VARIABLES, variables=body.variables,
                                      context=body.context)
    return Response(status_code=204)


@contextlib.contextmanager
def _refused() -> Iterator[None]:
    """A runner's refusal is the request's fault (an unknown context, a value it rejects)."""
    try:
        yield
    except RunnerOpError as exc:
        if exc.code is ErrorCode.NOT_FOUND:
            raise InvalidRequest(f"unknown context {exc.message}") from exc
        raise InvalidRequest(f"the runner refused: {exc.name}: {exc.message}") from exc
