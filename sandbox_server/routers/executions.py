"""``/v1/sandboxes/{id}/execute``: run code, as one JSON answer or as an NDJSON stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from ..jsonsafe import SafeJSONResponse, dumps_bytes
from ..manager import SandboxManager
from ..sandbox import Sandbox
from ..schemas import ExecuteRequest, ExecutionOut, ToolReply
from .deps import Manager, Owner

router = APIRouter(prefix="/v1/sandboxes/{sandbox_id}", tags=["executions"])


@router.post("/execute", response_model=ExecutionOut, summary="Run code and wait for the result")
async def execute(sandbox_id: str, body: ExecuteRequest, owner: Owner,
                  manager: Manager) -> SafeJSONResponse:
    # The same as sandbox_server.fastpath, which serves ordinary requests without FastAPI.
    sandbox = manager.get(owner, sandbox_id)
    return SafeJSONResponse(await run_to_end(manager, sandbox, body))


execute_route = router.routes[-1]  # for sandbox_server.fastpath's metrics label


async def run_to_end(manager: SandboxManager, sandbox: Sandbox,
                     body: ExecuteRequest) -> dict[str, Any]:
    """Run code to the end; the execution as a dict. Built by our own Execution.to_dict():
    already the documented shape, no re-validation on this hot path."""
    execution: dict[str, Any] = {}
    events = manager.execute(sandbox, body.code, timeout_s=body.timeout_s,
                             context=body.context, tools_answerable=False)
    async for event in events:
        if event["type"] == "execution":
            execution = event["execution"]
    return execution


@router.post(
    "/execute/stream", summary="Run code, streaming output as NDJSON",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}},
                     "description": "One JSON event per line: stdout, stderr, result, error, "
                     "tool_call, final_answer, keepalive; the last is "
                     '{"type": "execution", "execution": {...}}.'}},
)
async def execute_stream(sandbox_id: str, body: ExecuteRequest, owner: Owner,
                         manager: Manager) -> StreamingResponse:
    sandbox = manager.get(owner, sandbox_id)
    events = manager.execute(sandbox, body.code, timeout_s=body.timeout_s, context=body.context)
    # Start the run before answering, so an error (gone, limits) is a proper HTTP error.
    first = await anext(events)

    async def lines() -> AsyncIterator[bytes]:
        yield dumps_bytes(first) + b"\n"
        async for event in events:
            yield dumps_bytes(event) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get(
    "/executions/{execution_id}", response_model=ExecutionOut,
    summary="The result of an execution whose stream a server restart cut off",
    responses={409: {"description": "still running after wait_s; ask again"}},
)
async def interrupted_execution(sandbox_id: str, execution_id: str, owner: Owner,
                                manager: Manager,
                                wait_s: Annotated[float, Query(ge=0, le=300)] = 30.0,
                                ) -> SafeJSONResponse:
    sandbox = manager.get(owner, sandbox_id)
    return SafeJSONResponse(await manager.runs.recovered_execution(sandbox, execution_id, wait_s))


@router.post("/tool-calls/{call_id}", status_code=204,
             summary="Answer a tool call made by code in the sandbox")
async def answer_tool_call(sandbox_id: str, call_id: str, body: ToolReply, owner: Owner,
                           manager: Manager) -> Response:
    sandbox = manager.get(owner, sandbox_id)
    await manager.tool_reply(sandbox, call_id, body.ok, body.value, body.error)
    return Response(status_code=204)
