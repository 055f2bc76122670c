"""JSON on the server's hot paths: orjson when it can encode a value exactly, the standard
library otherwise (integers beyond 64 bits, lone surrogates, NaN and infinities), so the bytes
a client gets never depend on which encoder ran.

Decoding stays with the standard library: orjson reads a big integer as a float and refuses
lone surrogates, and what a sandbox sends must come back exactly as sent.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from starlette.responses import JSONResponse

__all__ = ["FastJSONResponse", "dumps"]


def _finite(value: Any) -> bool:
    """False if a float in value is NaN or infinite (orjson would write null for it)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (UTF-8), identical in meaning to ``json.dumps(value)``."""
    if _finite(value):
        try:
            return orjson.dumps(value)
        except TypeError:  # JSONEncodeError: a big int, a surrogate, a foreign type
            pass
    # ASCII with escapes: valid UTF-8 whatever the strings hold (a lone surrogate included).
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class FastJSONResponse(JSONResponse):
    """starlette's JSONResponse, rendered with :func:`dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
