"""One JSON error shape for every error the server returns::

    {"code": 422, "error_code": "limit_exceeded", "message": "...", "details": {...}}

``code`` (the HTTP status) and ``message`` are what E2B's SDK reads, so the same shape serves
both APIs.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from executors.exceptions import SandboxError

from .exceptions import ServerError
from .jsonsafe import SafeJSONResponse

__all__ = ["error_body", "install_error_handlers", "sandbox_error_response"]

logger = logging.getLogger("selfbox.errors")


def error_body(status: int, error_code: str, message: str,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": status, "error_code": error_code, "message": message}
    if details:
        body["details"] = details
    return body


def _respond(status: int, error_code: str, message: str,
             details: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return SafeJSONResponse(error_body(status, error_code, message, details), status,
                            headers=headers)


async def _sandbox_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SandboxError)
    return sandbox_error_response(exc, request.method, request.url.path)


def sandbox_error_response(exc: SandboxError, method: str, path: str) -> JSONResponse:
    """The response for a :class:`SandboxError` (logged when it is the server's fault)."""
    if exc.status_code >= 500 and getattr(exc, "server_fault", True):
        logger.error("%s %s failed: %s", method, path, exc, exc_info=exc.__cause__)
    details = {k: v for k, v in exc.details.items() if isinstance(v, (str, int, float, bool))}
    headers = exc.http_headers() if isinstance(exc, ServerError) else None
    return _respond(exc.status_code, exc.error_code, exc.message or str(exc), details, headers)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        message = "unknown field"
    if error.get("type") == "json_invalid":
        return "the body is not valid JSON"
    return f"{where}: {message}" if where else message


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    message = "; ".join(_describe(e) for e in errors[:10]) or "invalid request"
    fields = [".".join(str(p) for p in e.get("loc", ()) if p != "body") for e in errors[:10]]
    return _respond(422, "invalid_request", message, {"fields": ",".join(fields)})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    return _respond(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return _respond(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SandboxError, _sandbox_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
