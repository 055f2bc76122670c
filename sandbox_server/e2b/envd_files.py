"""envd's plain HTTP endpoints: ``GET /health``, ``GET /files`` (download) and ``POST /files``
(upload, multipart or octet-stream). The bytes travel through the runner in bounded chunks;
the file system touched is the sandbox's, never the host's.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from ..errors import error_body
from ..exceptions import PayloadTooLarge
from ..jsonsafe import SafeJSONResponse
from ..manager import SandboxManager
from ..routers.deps import Manager
from ..runner.protocol import Op
from ..sandbox import Sandbox
from .auth import DataSandbox
from .connect import ConnectError
from .runner_ops import call_op, http_status

__all__ = ["parse_multipart", "router"]

router = APIRouter(tags=["e2b envd files"])

CHUNK = 1 << 20  # per runner op; base64 makes it ~1.4 MB on the channel


def _failed(error: ConnectError) -> SafeJSONResponse:
    status = http_status(error)
    return SafeJSONResponse(error_body(status, error.code, error.message), status)


@router.get("/health", status_code=204, summary="envd health (204 while the sandbox lives)")
async def health(sandbox: DataSandbox) -> Response:
    return Response(status_code=204)


@router.get("/files", summary="Download a file from the sandbox")
async def download(sandbox: DataSandbox, manager: Manager,
                   path: str = Query(..., min_length=1, max_length=4096)) -> Response:
    try:
        first = await call_op(manager, sandbox, Op.FS_READ, path=path, offset=0, length=CHUNK)
    except ConnectError as exc:
        return _failed(exc)

    async def chunks() -> AsyncIterator[bytes]:
        reply, offset = first, 0
        while True:
            data = base64.b64decode(reply["data"])
            offset += len(data)
            if data:
                yield data
            if reply.get("eof") or not data:
                return
            # A failure mid-stream cannot change the status any more: end the body short.
            reply = await call_op(manager, sandbox, Op.FS_READ, path=path, offset=offset,
                                  length=CHUNK)

    filename = path.rsplit("/", 1)[-1] or "file"
    safe = re.sub(r'[^A-Za-z0-9._-]', "_", filename)
    return StreamingResponse(chunks(), media_type="application/octet-stream",
                             headers={"Content-Disposition": f'attachment; filename="{safe}"'})


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str | None, bytes]]:
    """The ``(filename, content)`` of each part of a multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    parts: list[tuple[str | None, bytes]] = []
    for raw in body.split(delimiter)[1:]:
        if raw.startswith(b"--"):
            break  # the closing delimiter
        head, sep, content = raw.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("malformed multipart part")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = head.decode("utf-8", "replace")
        name = re.search(r'filename\*?="?([^";\r\n]*)"?', headers)
        parts.append((name.group(1) if name else None, content))
    return parts


async def _write(manager: SandboxManager, sandbox: Sandbox, path: str,
                 chunks: AsyncIterator[bytes]) -> dict[str, Any]:
    reply: dict[str, Any] | None = None
    async for chunk in chunks:
        reply = await call_op(manager, sandbox, Op.FS_WRITE, path=path, append=reply is not None,
                              data=base64.b64encode(chunk).decode("ascii"))
    if reply is None:  # an empty file
        reply = await call_op(manager, sandbox, Op.FS_WRITE, path=path, data="")
    return {"name": reply["name"], "type": "file", "path": reply["path"]}


async def _rechunk(source: AsyncIterator[bytes], inflate: bool, cap: int) -> AsyncIterator[bytes]:
    """Regroup an upload into CHUNK-sized pieces; gunzip it on the way, with a size cap."""
    gunzip = zlib.decompressobj(wbits=47) if inflate else None
    buffer, total = bytearray(), 0
    async for piece in source:
        data = gunzip.decompress(piece, cap + 1 - total) if gunzip is not None else piece
        total += len(data)
        if total > cap:
            raise PayloadTooLarge(f"the decompressed upload is larger than {cap} bytes "
                                  "(SELFBOX_MAX_REQUEST_BODY_BYTES)")
        buffer += data
        while len(buffer) >= CHUNK:
            yield bytes(buffer[:CHUNK])
            del buffer[:CHUNK]
    yield bytes(buffer)


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start:start + CHUNK]


@router.post("/files", summary="Upload files into the sandbox")
async def upload(request: Request, sandbox: DataSandbox, manager: Manager,
                 path: str | None = Query(None, max_length=4096)) -> Response:
    content_type = request.headers.get("content-type", "")
    cap = manager.settings.max_request_body_bytes
    written: list[dict[str, Any]] = []
    try:
        if content_type.startswith("multipart/form-data"):
            # The body is already capped by the server's request-size limit.
            parts = parse_multipart(await request.body(), content_type)
            if not parts:
                raise ConnectError("invalid_argument", "no file part in the upload")
            signed = "signature" in request.query_params and not request.headers.get(
                "e2b-sandbox-id")
            if signed and (len(parts) != 1 or not path):
                # A signed URL covers its one path, not the file names inside the body.
                raise ConnectError("invalid_argument", "a signed upload URL takes one file")
            for filename, content in parts:
                target = path if path and len(parts) == 1 else filename
                if not target:
                    raise ConnectError("invalid_argument", "a file part has no path")
                written.append(await _write(manager, sandbox, target, _pieces(content)))
        else:
            if not path:
                raise ConnectError("invalid_argument", "the path query parameter is required")
            gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
            written.append(await _write(manager, sandbox, path,
                                        _rechunk(request.stream(), gzipped, cap)))
    except ConnectError as exc:
        return _failed(exc)
    except (ValueError, zlib.error) as exc:
        return _failed(ConnectError("invalid_argument", f"bad upload: {exc}"))
    return SafeJSONResponse(written)
