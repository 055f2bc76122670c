"""Ingress routes: HTTP to a server listening inside a sandbox.

* ``/v1/sandboxes/{id}/ports/{port}/{path}`` with the owner's API key;
* E2B's host scheme, ``{port}-{sandbox_id}.{domain}`` (what ``Sandbox.get_host(port)``
  returns), with the sandbox's access token (``X-Access-Token`` or
  ``E2B-Traffic-Access-Token``). :class:`IngressHosts` recognises such a Host header and
  rewrites the request onto an internal route, so the one error table and the middleware
  stack apply to both.

The credential that authenticated a request is never forwarded into the sandbox.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth import require_key
from ..e2b.auth import TOKEN_KEY, manager_of, owner_of_sandbox
from ..exceptions import NotFound, SandboxGone, Unauthorized
from ..routers.deps import Manager, Owner
from ..sandbox import Sandbox
from ..settings import Settings
from .proxy import HOP_BY_HOP, forward_http
from .tunnel import PortTunnel
from .websocket import relay_websocket

__all__ = ["E2B_RESERVED_PORTS", "IngressHosts", "router"]

router = APIRouter(tags=["ingress"])

# envd and the code interpreter: on these ports the E2B host is the data plane, not ingress.
E2B_RESERVED_PORTS = frozenset({49983, 49999})
INTERNAL_PREFIX = "/_ingress/e2b"
SCOPE_FLAG = "selfbox.ingress_host"
_HOST = re.compile(r"^(\d{1,5})-([0-9a-z]{1,64})\.([^:]+)(?::\d+)?$")
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-access-token",
                                 "e2b-traffic-access-token", "e2b-sandbox-id",
                                 "e2b-sandbox-port"})


def match_host(host: str, domain: str | None) -> tuple[int, str] | None:
    """``(port, sandbox_id)`` if ``host`` is an E2B sandbox host for ``domain`` (any domain
    when none is configured), else None."""
    found = _HOST.match(host.strip().lower())
    if found is None:
        return None
    port, sandbox_id, rest = int(found.group(1)), found.group(2), found.group(3)
    if domain is not None and rest != domain.lower().rstrip("."):
        return None
    if port in E2B_RESERVED_PORTS or not 0 < port < 65536:
        return None
    return port, sandbox_id


class IngressHosts:
    """ASGI middleware: a request for ``{port}-{id}.{domain}`` goes to the ingress route."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.settings.ingress_enabled:
            raw = next((v for k, v in scope.get("headers", []) if k == b"host"), b"")
            # Every sandbox host has a "-" ({port}-{id}); the API's own hosts mostly do not.
            matched = match_host(raw.decode("latin-1"), self.settings.e2b_sandbox_domain) \
                if b"-" in raw else None
            if matched is not None:
                port, sandbox_id = matched
                path = f"{INTERNAL_PREFIX}/{sandbox_id}/{port}{scope['path']}"
                scope = {**scope, "path": path, "raw_path": path.encode("utf-8"),
                         SCOPE_FLAG: True}
        await self.app(scope, receive, send)


def _forwarded(request: Request, prefix: str) -> dict[str, str]:
    return {
        "x-forwarded-host": request.headers.get("host", ""),
        "x-forwarded-proto": request.url.scheme,
        "x-forwarded-prefix": prefix,
        "x-forwarded-for": request.client.host if request.client else "",
    }


def _headers_without(request: Request, drop: frozenset[str]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.headers.items() if k.lower() not in drop]


async def _proxy(request: Request, sandbox: Sandbox, port: int, path: str,
                 prefix: str, drop: frozenset[str]) -> Response:
    settings: Settings = request.app.state.settings
    if not settings.ingress_enabled:
        raise NotFound("ingress is disabled on this server (SELFBOX_INGRESS_ENABLED)")
    manager = manager_of(request)
    body = await request.body()  # already capped by SELFBOX_MAX_REQUEST_BODY_BYTES
    tunnel = await PortTunnel.open(manager.gateway, sandbox, port,
                                   settings.max_ingress_connections_per_sandbox)
    target = "/" + path.lstrip("/")
    if request.url.query:
        target += "?" + request.url.query
    return await forward_http(
        tunnel, method=request.method, target=target, port=port,
        headers=_headers_without(request, drop), body=body,
        forwarded=_forwarded(request, prefix), idle_timeout_s=settings.ingress_idle_timeout_s)


@router.api_route("/v1/sandboxes/{sandbox_id}/ports/{port}", methods=_METHODS,
                  include_in_schema=False)
async def v1_ingress(sandbox_id: str, port: int, request: Request, owner: Owner,
                     manager: Manager, path: str = "") -> Response:
    sandbox = manager.get(owner, sandbox_id)
    # The API key authenticated this request: it never reaches the sandbox.
    return await _proxy(request, sandbox, port, path,
                        f"/v1/sandboxes/{sandbox_id}/ports/{port}",
                        frozenset({"authorization", "x-api-key"}))


# One documented route per method: a multi-method route gives every method the same OpenAPI
# operation id.
for _method in _METHODS:
    router.add_api_route(
        "/v1/sandboxes/{sandbox_id}/ports/{port}/{path:path}", v1_ingress, methods=[_method],
        name=f"v1_ingress_{_method.lower()}",
        summary="HTTP to a server listening on a port inside the sandbox")


def _e2b_sandbox(request: HTTPConnection, sandbox_id: str) -> Sandbox:
    presented = (request.headers.get("x-access-token")
                 or request.headers.get("e2b-traffic-access-token") or "")
    if not presented:
        raise Unauthorized(f"the sandbox host needs the sandbox's access token "
                           f"(X-Access-Token or E2B-Traffic-Access-Token) for {sandbox_id}")
    # Unknown sandbox and wrong token look the same: a token for another sandbox reveals
    # nothing about this one.
    not_found = NotFound(f"sandbox {sandbox_id!r} not found", sandbox_id=sandbox_id)
    owner = owner_of_sandbox(request, sandbox_id)
    if owner is None:
        raise not_found
    try:
        sandbox = manager_of(request).get(owner, sandbox_id)
    except (NotFound, SandboxGone) as exc:
        raise not_found from exc
    expected = str(sandbox.extra.get(TOKEN_KEY, ""))
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise not_found
    return sandbox


@router.api_route(INTERNAL_PREFIX + "/{sandbox_id}/{port}/{path:path}", methods=_METHODS,
                  include_in_schema=False)
async def e2b_ingress(sandbox_id: str, port: int, request: Request, path: str = "") -> Any:
    if not request.scope.get(SCOPE_FLAG):
        raise NotFound(f"{request.url.path} not found")  # only reachable through the Host
    sandbox = _e2b_sandbox(request, sandbox_id)
    return await _proxy(request, sandbox, port, path, "", _CREDENTIAL_HEADERS)


# -- WebSocket ----------------------------------------------------------------------------------
_WS_HEADERS = HOP_BY_HOP | {"sec-websocket-key", "sec-websocket-version",
                            "sec-websocket-extensions", "sec-websocket-protocol"}


async def _relay(websocket: WebSocket, sandbox: Sandbox, port: int, path: str,
                 drop: frozenset[str]) -> None:
    settings: Settings = websocket.app.state.settings
    target = "/" + path.lstrip("/")
    if websocket.url.query:
        target += "?" + websocket.url.query
    tunnel = await PortTunnel.open(manager_of(websocket).gateway, sandbox, port,
                                   settings.max_ingress_connections_per_sandbox)
    headers = [(k, v) for k, v in websocket.headers.items()
               if k.lower() not in drop | _WS_HEADERS]
    await relay_websocket(websocket, tunnel, target=target, port=port, headers=headers,
                          idle_timeout_s=settings.ingress_idle_timeout_s)


@router.websocket("/v1/sandboxes/{sandbox_id}/ports/{port}/{path:path}")
async def v1_ingress_ws(websocket: WebSocket, sandbox_id: str, port: int, path: str = "") -> None:
    owner = await require_key(websocket)
    sandbox = manager_of(websocket).get(owner, sandbox_id)
    await _relay(websocket, sandbox, port, path, frozenset({"authorization", "x-api-key"}))


@router.websocket(INTERNAL_PREFIX + "/{sandbox_id}/{port}/{path:path}")
async def e2b_ingress_ws(websocket: WebSocket, sandbox_id: str, port: int,
                         path: str = "") -> None:
    if not websocket.scope.get(SCOPE_FLAG):
        raise NotFound(f"{websocket.url.path} not found")
    await _relay(websocket, _e2b_sandbox(websocket, sandbox_id), port, path,
                 _CREDENTIAL_HEADERS)
