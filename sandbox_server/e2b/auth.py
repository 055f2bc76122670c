"""Data-plane authentication: the per-sandbox access token.

The SDK sends the API key only to the control plane. Calls into a sandbox (``/execute``,
``/files``, RPC) carry ``E2b-Sandbox-Id`` and the ``envdAccessToken`` returned at create or
connect, as ``X-Access-Token`` (or as ``E2B-Traffic-Access-Token`` on ``/contexts``, the one
call that omits the former). The token is derived from the server's state secret and the
sandbox id (:func:`~sandbox_server.records.envd_token`), so it survives a server restart; an
index maps sandbox ids to owners so the record can be found without an API key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from ..exceptions import InvalidRequest, NotFound, SandboxGone, ServerError, Unauthorized
from ..manager import SandboxManager
from ..records import envd_token
from ..sandbox import Sandbox

__all__ = [
    "TOKEN_KEY",
    "DataSandbox",
    "SandboxNotFound",
    "issue_token",
    "manager_of",
    "owner_of_sandbox",
    "sandbox_for",
]

TOKEN_KEY = "e2b_access_token"
ISSUED_KEY = "e2b_token_issued"  # carried in the sandbox's signed record across restarts


class SandboxNotFound(ServerError):
    """What E2B's proxy answers for a sandbox it does not know; the SDK reads the message
    ("... was not found") to tell a killed sandbox from an unreachable one."""

    status_code = 502
    error_code = "sandbox_not_found"
    server_fault = False  # a 5xx by E2B's convention, but nothing failed here: no error log


class UnknownUser(ServerError):
    """The SDK asked to act as another user (``user="root"``): sandboxes have only one."""

    status_code = 403
    error_code = "permission_denied"


SANDBOX_USER = "user"


def _requested_user(request: Request) -> str | None:
    # envd takes the user as HTTP Basic credentials (RPC) or a `username` parameter (/files).
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            return base64.b64decode(value.strip()).decode("utf-8").partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return "?"
    return request.query_params.get("username")


class _Index:
    """sandbox id -> owner, for sandboxes that were given an access token."""

    def __init__(self, manager: SandboxManager) -> None:
        # Sandboxes adopted from an earlier server that had given them a token.
        self.owners: dict[str, str] = {sb.id: sb.owner for sb in manager.live()
                                       if sb.extra.get(ISSUED_KEY)}
        manager.observers.append(self._observe)

    def _observe(self, event: str, fields: dict[str, Any]) -> None:
        sandbox = fields.get("sandbox")
        if event == "ended" and isinstance(sandbox, Sandbox):
            self.owners.pop(sandbox.id, None)
        elif event == "adopted" and isinstance(sandbox, Sandbox) and sandbox.extra.get(ISSUED_KEY):
            self.owners[sandbox.id] = sandbox.owner


def manager_of(request: HTTPConnection) -> SandboxManager:
    manager: SandboxManager = request.app.state.manager
    return manager


def _index(request: HTTPConnection) -> _Index:
    index = getattr(request.app.state, "e2b_index", None)
    if index is None:
        index = _Index(manager_of(request))
        request.app.state.e2b_index = index
    return index


def owner_of_sandbox(request: HTTPConnection, sandbox_id: str) -> str | None:
    """The owner of a sandbox that was given an access token, else None."""
    return _index(request).owners.get(sandbox_id)


def issue_token(request: Request, sandbox: Sandbox) -> str:
    """The sandbox's access token, minted on first use (a /v1 sandbox gets one on connect)."""
    manager = manager_of(request)
    token = _token(manager, sandbox)
    if not sandbox.extra.get(ISSUED_KEY):
        sandbox.extra[ISSUED_KEY] = True
        manager.save_record_soon(sandbox)  # a restarted server must know it had a token
    _index(request).owners[sandbox.id] = sandbox.owner
    return token


def _token(manager: SandboxManager, sandbox: Sandbox) -> str:
    token = sandbox.extra.get(TOKEN_KEY)
    if not isinstance(token, str):
        token = envd_token(manager.state_secret, sandbox.id)
        sandbox.extra[TOKEN_KEY] = token
    return token


def _signature(path: str, operation: str, user: str, token: str, expiration: str | None) -> str:
    # E2B's v1 file-URL signature: sha256 over "path:operation:user:token[:expiration]".
    raw = f"{path}:{operation}:{user}:{token}" + (f":{expiration}" if expiration else "")
    digest = hashlib.sha256(raw.encode("utf-8")).digest()
    return "v1_" + base64.b64encode(digest).rstrip(b"=").decode("ascii")


def _signed(request: Request) -> Sandbox:
    """The sandbox of a signed file URL (download_url / upload_url): such a URL carries no
    sandbox id, so the signature is checked against each token-holding sandbox."""
    query = request.query_params
    presented, expiration = query.get("signature", ""), query.get("signature_expiration")
    if expiration is not None and (not expiration.isdigit() or int(expiration) < time.time()):
        raise Unauthorized("the signed URL has expired")
    operation = "read" if request.method == "GET" else "write"
    user, path = query.get("username") or "", query.get("path") or ""
    manager = manager_of(request)
    for sandbox_id, owner in list(_index(request).owners.items()):
        try:
            sandbox = manager.get(owner, sandbox_id)
        except (NotFound, SandboxGone):
            continue
        token = _token(manager, sandbox)
        if hmac.compare_digest(
                presented.encode(), _signature(path, operation, user, token, expiration).encode()):
            return sandbox
    raise Unauthorized("the file URL signature matches no live sandbox")


def sandbox_for(request: Request) -> Sandbox:
    """FastAPI dependency: the live sandbox a data-plane call is for, or 502/401."""
    sandbox_id = request.headers.get("e2b-sandbox-id", "")
    if not sandbox_id and request.url.path == "/files" and "signature" in request.query_params:
        sandbox = _signed(request)
        _check_user(request)
        return sandbox
    if not sandbox_id:
        raise InvalidRequest("missing E2b-Sandbox-Id header")
    owner = _index(request).owners.get(sandbox_id)
    if owner is None:
        raise SandboxNotFound(f"sandbox {sandbox_id} was not found")
    try:
        sandbox = manager_of(request).get(owner, sandbox_id)
    except (NotFound, SandboxGone) as exc:
        raise SandboxNotFound(f"sandbox {sandbox_id} was not found") from exc
    presented = (request.headers.get("x-access-token")
                 or request.headers.get("e2b-traffic-access-token") or "")
    expected = _token(manager_of(request), sandbox)
    if not presented or not hmac.compare_digest(presented.encode(), str(expected).encode()):
        raise Unauthorized(f"invalid or missing access token for sandbox {sandbox_id}")
    _check_user(request)
    return sandbox


def _check_user(request: Request) -> None:
    user = _requested_user(request)
    if user not in (None, "", SANDBOX_USER):
        raise UnknownUser(f"user {user!r} does not exist in selfbox sandboxes: everything runs "
                          f"as {SANDBOX_USER!r} (uid 1000), never as root")


DataSandbox = Annotated[Sandbox, Depends(sandbox_for)]
