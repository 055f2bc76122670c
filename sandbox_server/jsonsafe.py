"""JSON that always encodes: text from a sandbox (or a client) may hold lone surrogates.

A lone surrogate (``'\\udcff'``, what ``os.listdir`` gives for a non-UTF-8 file name) is a
valid Python ``str`` and a valid JSON escape, but not encodable as UTF-8: rendered as is it
turned a finished execution into a 500, and cut the E2B stream in the middle of its body.
Strings that come from the runner are scrubbed once, where they enter the server
(:func:`scrub`): each lone surrogate becomes the visible text ``\\udcff``, as Python's
``backslashreplace`` writes it. Responses are rendered with :func:`dumps_bytes`, which cannot
fail on text that slipped past (it escapes instead). They are also the hot path's encoder:
orjson writes what it can encode exactly (NaN as null, as :func:`scrub` does) and the standard
library takes the rest (integers beyond 64 bits, lone surrogates), so the bytes a client gets
mean the same whichever encoder ran. Decoding follows the standard library: orjson reads a
big integer as a float and refuses lone surrogates, and what a sandbox sends must come back as
sent, so :func:`~.inbound.parse_frame` gives orjson only the lines it reads the same way.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
from fastapi.responses import JSONResponse

__all__ = ["SafeJSONResponse", "dumps_bytes", "may_hold_surrogates", "scrub", "scrub_text"]

# A JSON escape of a surrogate code point (a pair is fine, a lone one is not; both trigger
# the scrub, which keeps pairs) or a raw UTF-8 surrogate (ED A0..BF), which json.loads of
# bytes also lets through.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\xed[\xa0-\xbf]")


def may_hold_surrogates(raw: bytes) -> bool:
    """Whether JSON text could decode to a string with a lone surrogate (cheap pre-check)."""
    return _SURROGATE.search(raw) is not None


def scrub_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def scrub(value: Any) -> Any:
    """``value`` with every string (keys too) made UTF-8 encodable and every non-finite float
    (not JSON) made null; nesting is bounded by the JSON parser that produced it."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrub_text(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_bytes(content: Any) -> bytes:
    """UTF-8 JSON; a lone surrogate that got this far is written as its JSON escape."""
    try:
        return orjson.dumps(content)
    except TypeError:  # orjson.JSONEncodeError: a big int, a lone surrogate, a foreign type
        pass
    try:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:  # NaN or infinity somewhere: JSON has no such numbers
        text = json.dumps(scrub(content), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


class SafeJSONResponse(JSONResponse):
    """The app's JSON response: never a 500 for text that is not UTF-8 encodable."""

    def render(self, content: Any) -> bytes:
        return dumps_bytes(content)
