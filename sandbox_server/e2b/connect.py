"""The Connect protocol (JSON codec) as E2B's envd speaks it, I/O-free.

* Unary: the request and the reply are plain JSON bodies (``application/json``); an error is a
  non-200 status with ``{"code": "<connect code>", "message": ...}``.
* Server stream: the request body is ONE envelope; the reply (``application/connect+json``,
  exactly) is a sequence of envelopes, ending with an end-stream envelope (flag 0x02) holding
  ``{}`` or ``{"error": {...}}``.

An envelope is 1 flag byte + a 4-byte big-endian length + the JSON payload.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

from ..jsonsafe import dumps_bytes

__all__ = [
    "CODE_STATUS",
    "END_STREAM",
    "STREAM_CONTENT_TYPE",
    "ConnectError",
    "EnvelopeDecoder",
    "decode_single",
    "encode_envelope",
    "end_stream",
]

STREAM_CONTENT_TYPE = "application/connect+json"
END_STREAM = 0x02
COMPRESSED = 0x01
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
_HEADER = struct.Struct(">BI")

# The HTTP status of a unary error, per the Connect spec's code table.
CODE_STATUS: dict[str, int] = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}


class ConnectError(Exception):
    """An RPC failure with its Connect code; rendered as a unary error or an end-stream."""

    def __init__(self, code: str, message: str, *, no_space: bool = False) -> None:
        if code not in CODE_STATUS:
            raise ValueError(f"unknown Connect code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.no_space = no_space  # resource_exhausted for want of disk space (HTTP 507)

    @property
    def http_status(self) -> int:
        return CODE_STATUS[self.code]

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def _dumps(message: Any) -> bytes:
    return dumps_bytes(message)


def encode_envelope(message: Any, flags: int = 0) -> bytes:
    payload = _dumps(message)
    return _HEADER.pack(flags, len(payload)) + payload


def end_stream(error: ConnectError | None = None) -> bytes:
    """The closing envelope of a server stream: ``{}`` or ``{"error": {...}}``."""
    return encode_envelope({"error": error.to_json()} if error else {}, END_STREAM)


class EnvelopeDecoder:
    """Split a byte stream into ``(flags, json)`` envelopes; feed it chunks as they come."""

    def __init__(self, max_bytes: int = MAX_ENVELOPE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_bytes

    def feed(self, data: bytes) -> Iterator[tuple[int, Any]]:
        self._buffer += data
        while len(self._buffer) >= _HEADER.size:
            flags, size = _HEADER.unpack_from(self._buffer)
            if size > self._max:
                raise ConnectError("resource_exhausted",
                                   f"envelope of {size} bytes exceeds {self._max}")
            if flags & COMPRESSED:
                raise ConnectError("unimplemented", "compressed envelopes are not supported")
            end = _HEADER.size + size
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[_HEADER.size:end])
            del self._buffer[:end]
            try:
                message = json.loads(payload) if payload else {}
            except ValueError as exc:
                raise ConnectError("invalid_argument", f"envelope is not JSON: {exc}") from exc
            yield flags, message

    @property
    def pending(self) -> int:
        """Bytes of an incomplete envelope still buffered."""
        return len(self._buffer)


def decode_single(body: bytes) -> dict[str, Any]:
    """The one message of a server-stream request body (exactly one data envelope)."""
    decoder = EnvelopeDecoder()
    messages = [m for flags, m in decoder.feed(body) if not flags & END_STREAM]
    if decoder.pending or len(messages) != 1:
        raise ConnectError("invalid_argument",
                           "a server-stream request must be exactly one envelope")
    message = messages[0]
    if not isinstance(message, dict):
        raise ConnectError("invalid_argument", "the request message must be a JSON object")
    return message
