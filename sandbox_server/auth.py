"""API keys: ``Authorization: Bearer <key>`` (or E2B's ``X-API-KEY``). A sandbox belongs to the
key that created it, recorded as the key's id (a hash prefix; the key itself is never stored)."""

from __future__ import annotations

import functools
import hashlib
import hmac

from pydantic import SecretStr
from starlette.requests import HTTPConnection

from .exceptions import Unauthorized

__all__ = ["key_id", "owner_of", "require_key"]


@functools.lru_cache(maxsize=256)
def key_id(key: str) -> str:
    # Cached: called on every request with one of a few configured keys (only after the key
    # matched one of them, so the cache holds nothing an unauthenticated caller chose).
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _presented_key(request: HTTPConnection) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


async def require_key(request: HTTPConnection) -> str:
    """FastAPI dependency: the caller's key id, or 401."""
    return _owner(_presented_key(request), request.app.state.settings.api_keys)


def owner_of(authorization: bytes | None, api_key: bytes | None,
             keys: list[SecretStr]) -> str:
    """:func:`require_key` from raw header values (the ASGI fast path): a key id, or 401."""
    presented = None
    scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        presented = token.strip()
    elif api_key:
        presented = api_key.decode("latin-1")
    return _owner(presented, keys)


def _owner(presented: str | None, keys: list[SecretStr]) -> str:
    if presented is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    matched = False
    for secret in keys:
        # Compare with every key, in constant time, so timing reveals nothing.
        matched |= hmac.compare_digest(presented.encode(), secret.get_secret_value().encode())
    if not matched:
        raise Unauthorized("invalid API key")
    return key_id(presented)
