"""``/v1/sandboxes/{id}/tools`` and ``/variables``: set up the runner's namespace.

Tools are registered by name only: the sandbox gets a proxy per name that asks the client
(over the execute stream's ``tool_call`` events) to run the real callable on its side.
Variables are JSON values, defined in a context's namespace.
"""

from __future__ import annotations

import keyword
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from ..exceptions import InvalidRequest
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
    reply = await manager.request(sandbox, "set_tools", tools=[t.model_dump() for t in body.tools])
    _check_reply(reply)
    return Response(status_code=204)


@router.put("/variables", status_code=204, summary="Define JSON variables in a context")
async def set_variables(sandbox_id: str, body: SetVariables, owner: Owner,
                        manager: Manager) -> Response:
    sandbox = manager.get(owner, sandbox_id)
    for name in body.variables:
        check_identifier("variable", name)
    reply = await manager.request(sandbox, "set_variables", variables=body.variables,
                                  context=body.context)
    _check_reply(reply)
    return Response(status_code=204)


def _check_reply(reply: dict[str, Any]) -> None:
    if not reply.get("ok", True):
        error = reply.get("error") or {}
        if error.get("name") == "KeyError":
            raise InvalidRequest(f"unknown context {error.get('value', '')}")
        raise InvalidRequest(f"the runner refused: {error.get('name')}: {error.get('value')}")
