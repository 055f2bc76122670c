"""Signed state records and derived envd tokens (no Docker)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from sandbox_server.records import (
    envd_token,
    load_secret,
    record_of,
    sandbox_from,
    sign,
    verify,
)
from sandbox_server.sandbox import Limits, Sandbox
from sandbox_server.settings import Settings

SECRET = b"s" * 40


def sandbox() -> Sandbox:
    return Sandbox(id="abc123", owner="owner-1", template="selfbox/runtime:latest",
                   limits=Limits(1.0, 512, 256, 256, "none"), metadata={"k": "v"}, env={},
                   created_at=1000.0, expires_at=2000.0, extra={"e2b_token_issued": True,
                                                                "oom": True})


def test_a_record_round_trips_and_carries_only_what_a_new_server_needs() -> None:
    blob = sign(SECRET, record_of(sandbox(), "dep"))
    record = verify(SECRET, blob)
    assert record is not None and record["deployment"] == "dep"
    back = sandbox_from(record)
    assert (back.id, back.owner, back.metadata, back.limits, back.expires_at) == (
        "abc123", "owner-1", {"k": "v"}, Limits(1.0, 512, 256, 256, "none"), 2000.0)
    assert back.extra == {"e2b_token_issued": True}  # not the server's private flags


def test_tampered_or_foreign_records_do_not_verify() -> None:
    blob = sign(SECRET, record_of(sandbox(), "dep"))
    body, mac = blob.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["owner"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    assert verify(SECRET, f"{forged}.{mac}") is None
    assert verify(b"another secret of enough length......", blob) is None
    for junk in (None, 42, "", "a.b.c", "not-base64!.x", "x" * 70000):
        assert verify(SECRET, junk) is None


def test_envd_tokens_are_stable_per_sandbox_and_secret() -> None:
    assert envd_token(SECRET, "abc") == envd_token(SECRET, "abc")
    assert envd_token(SECRET, "abc") != envd_token(SECRET, "abd")
    assert envd_token(SECRET, "abc") != envd_token(b"t" * 40, "abc")


def test_the_secret_file_is_created_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secret"
    settings = Settings(api_keys=["k"], state_secret_file=str(path))
    first = load_secret(settings)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_secret(settings) == first and len(first) >= 32
    explicit = Settings(api_keys=["k"], state_secret="x" * 40)
    assert load_secret(explicit) == b"x" * 40
