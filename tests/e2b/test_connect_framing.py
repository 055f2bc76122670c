"""The I/O-free Connect framing (no Docker): our envelopes, and the SDK's own reader
(connectrpc + E2B's JSON codec + envd's generated messages) decoding them."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from sandbox_server.e2b.connect import (
    CODE_STATUS,
    END_STREAM,
    ConnectError,
    EnvelopeDecoder,
    decode_single,
    encode_envelope,
    end_stream,
)
from sandbox_server.e2b.envd_files import parse_multipart
from sandbox_server.e2b.interpreter import result_line


def test_envelope_layout() -> None:
    frame = encode_envelope({"event": {"start": {"pid": 7}}})
    payload = b'{"event":{"start":{"pid":7}}}'
    assert frame == b"\x00" + struct.pack(">I", len(payload)) + payload
    assert end_stream() == b"\x02\x00\x00\x00\x02{}"
    error = end_stream(ConnectError("not_found", "no such pid"))
    assert error[0] == END_STREAM
    assert json.loads(error[5:]) == {"error": {"code": "not_found", "message": "no such pid"}}


def test_decoder_handles_any_split() -> None:
    stream = (encode_envelope({"a": 1}) + encode_envelope({"b": "é"})
              + end_stream(ConnectError("internal", "x")))
    for step in (1, 2, 3, 7, len(stream)):
        decoder = EnvelopeDecoder()
        got = []
        for start in range(0, len(stream), step):
            got.extend(decoder.feed(stream[start:start + step]))
        assert got == [(0, {"a": 1}), (0, {"b": "é"}),
                       (END_STREAM, {"error": {"code": "internal", "message": "x"}})]
        assert decoder.pending == 0


def test_decode_single_accepts_exactly_one_message() -> None:
    assert decode_single(encode_envelope({"process": {"cmd": "ls"}})) == {
        "process": {"cmd": "ls"}}
    bad = [b"", encode_envelope({}) * 2, encode_envelope({"a": 1})[:-1],
           encode_envelope([1, 2]), b"\x00\x00\x00\x00\x03{x}"]
    for body in bad:
        with pytest.raises(ConnectError) as caught:
            decode_single(body)
        assert caught.value.code == "invalid_argument"


def test_decoder_refuses_oversized_and_compressed() -> None:
    with pytest.raises(ConnectError, match="exceeds"):
        list(EnvelopeDecoder(max_bytes=10).feed(encode_envelope({"k": "x" * 20})))
    with pytest.raises(ConnectError) as caught:
        list(EnvelopeDecoder().feed(b"\x01\x00\x00\x00\x02{}"))
    assert caught.value.code == "unimplemented"


def test_error_codes_and_statuses() -> None:
    assert ConnectError("not_found", "x").http_status == 404
    assert ConnectError("already_exists", "x").http_status == 409
    assert ConnectError("unauthenticated", "x").http_status == 401
    assert ConnectError("unavailable", "x").to_json() == {"code": "unavailable", "message": "x"}
    assert len(CODE_STATUS) == 16
    with pytest.raises(ValueError):
        ConnectError("no_such_code", "x")


@pytest.mark.e2b
def test_the_sdk_reader_decodes_our_process_stream() -> None:
    from connectrpc._compression import IdentityCompression
    from connectrpc._protocol_connect import ConnectEnvelopeReader
    from connectrpc.code import Code
    from connectrpc.errors import ConnectError as SdkConnectError
    from e2b.envd.client_shared import ENVD_JSON_CODEC
    from e2b.envd.process import process_pb

    frames = b"".join([
        encode_envelope({"event": {"start": {"pid": 42}}}),
        encode_envelope({"event": {"data": {"stdout": base64.b64encode(b"hi\n").decode()}}}),
        encode_envelope({"event": {"keepalive": {}}}),
        encode_envelope({"event": {"end": {"exitCode": 3, "exited": True,
                                           "status": "exit status 3"}}}),
        end_stream(),
    ])
    reader = ConnectEnvelopeReader(process_pb.StartResponse, ENVD_JSON_CODEC,
                                   IdentityCompression(), None)
    messages = list(reader.feed(frames))
    assert [m.event.event.field for m in messages] == ["start", "data", "keepalive", "end"]
    assert messages[0].event.event.value.pid == 42
    assert messages[1].event.event.value.output.value == b"hi\n"
    assert messages[3].event.event.value.exit_code == 3

    failing = ConnectEnvelopeReader(process_pb.StartResponse, ENVD_JSON_CODEC,
                                    IdentityCompression(), None)
    with pytest.raises(SdkConnectError) as caught:
        list(failing.feed(end_stream(ConnectError("not_found", "process 9 not found"))))
    assert caught.value.code == Code.NOT_FOUND


@pytest.mark.e2b
def test_result_line_maps_the_mime_bundle() -> None:
    line = result_line({"text/plain": "'s'", "text/html": "<b>", "image/png": "iVBO",
                        "application/json": {"a": 1}, "text/markdown": "*m*",
                        "image/svg+xml": "<svg/>", "application/x-other": "o"}, True)
    assert line == {"type": "result", "is_main_result": True, "text": "s", "html": "<b>",
                    "png": "iVBO", "json": {"a": 1}, "markdown": "*m*", "svg": "<svg/>",
                    "extra": {"application/x-other": "o"}}
    from e2b_code_interpreter.models import Result

    fields = dict(line)
    fields.pop("type")
    assert Result(**fields).text == "s"


def test_multipart_parser_reads_what_httpx_sends() -> None:
    import httpx

    request = httpx.Request("POST", "http://x/files", files=[
        ("file", ("/tmp/a.txt", b"one\r\n--not-a-boundary\r\n")),
        ("file", ("/home/user/b.bin", bytes(range(256)))),
    ])
    body = request.read()
    parts = parse_multipart(body, request.headers["content-type"])
    assert parts == [("/tmp/a.txt", b"one\r\n--not-a-boundary\r\n"),
                     ("/home/user/b.bin", bytes(range(256)))]
    with pytest.raises(ValueError):
        parse_multipart(body, "multipart/form-data")
