"""API keys: ``Authorization: Bearer <key>`` (or E2B's ``X-API-KEY``). A sandbox belongs to the
key that created it, recorded as the key's id (a hash prefix; the key itself is never stored)."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import HTTPConnection

from .exceptions import Unauthorized

__all__ = ["key_id", "require_key"]


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _presented_key(request: HTTPConnection) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


async def require_key(request: HTTPConnection) -> str:
    """FastAPI dependency: the caller's key id, or 401."""
    presented = _presented_key(request)
    if presented is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    keys = request.app.state.settings.api_keys
    matched = False
    for secret in keys:
        # Compare with every key, in constant time, so timing reveals nothing.
        matched |= hmac.compare_digest(presented.encode(), secret.get_secret_value().encode())
    if not matched:
        raise Unauthorized("invalid API key")
    return key_id(presented)
