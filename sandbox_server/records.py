"""The state a restarted server needs to take a sandbox over, kept where it survives the server.

Container labels are fixed at create (a pooled sandbox gets its owner later) and the server keeps
no database, so each sandbox's runner holds a *record*: owner, metadata, template, limits,
lifetime, signed with an HMAC of the server's state secret. User code shares the runner's
process, so it can read or drop its record but not forge one; a record that does not verify
(or names another sandbox or deployment) means the container is removed, not adopted.

Replaying an older record of the same sandbox is the one thing a signature cannot stop. Two
rules bound it: a pooled sandbox is renamed at claim (``selfbox-pool-<id>`` to ``selfbox-<id>``,
outside the container's reach) and adoption believes a "pool" record only under a pool name,
so a claimed sandbox can never pass for an unused one; and the lifetime a record carries is one
the server granted it earlier, never longer than the longest it ever had.

The E2B envd access token is derived from the same secret (``HMAC(secret, sandbox id)``), so a
client that holds one keeps working across restarts without the token being stored anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from .sandbox import Limits, Sandbox
from .settings import Settings

__all__ = ["RECORD_VERSION", "envd_token", "load_secret", "record_of", "sandbox_from",
           "sign", "verify"]

logger = logging.getLogger("selfbox.records")

RECORD_VERSION = 1
POOL_NAME_PREFIX = "selfbox-pool-"
# Extra fields of a sandbox that a new server needs back (the E2B adapter's).
CARRIED_EXTRA = ("e2b_template", "e2b_token_issued")


def load_secret(settings: Settings) -> bytes:
    """``SELFBOX_STATE_SECRET``, else the file ``SELFBOX_STATE_SECRET_FILE`` (created with a
    random secret on first use), else a random secret for this process only."""
    if settings.state_secret is not None:
        return settings.state_secret.get_secret_value().encode()
    path = Path(os.path.expanduser(settings.state_secret_file)) if settings.state_secret_file \
        else None
    if path is not None:
        try:
            if path.exists():
                value = path.read_bytes().strip()
                if len(value) >= 32:
                    return value
                logger.error("%s holds fewer than 32 bytes: not used", path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                value = secrets.token_urlsafe(48).encode()
                # O_EXCL: two servers starting at once agree on the first one written.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(value + b"\n")
                return value
        except FileExistsError:
            return path.read_bytes().strip()
        except OSError as exc:
            logger.error("cannot keep the state secret in %s (SELFBOX_STATE_SECRET_FILE): %s",
                         path, exc)
    logger.warning("no persistent state secret (SELFBOX_STATE_SECRET or "
                   "SELFBOX_STATE_SECRET_FILE): sandboxes will not survive a restart of "
                   "this server")
    return secrets.token_bytes(32)


def _mac(secret: bytes, purpose: str, payload: bytes) -> bytes:
    return hmac.new(secret, purpose.encode() + b"\0" + payload, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def envd_token(secret: bytes, sandbox_id: str) -> str:
    return _b64(_mac(secret, "envd-token", sandbox_id.encode()))


def sign(secret: bytes, record: dict[str, Any]) -> str:
    payload = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, 'record', payload))}"


def verify(secret: bytes, blob: object) -> dict[str, Any] | None:
    """The record, if ``blob`` is one this secret signed; else None."""
    if not isinstance(blob, str) or blob.count(".") != 1 or len(blob) > 64 * 1024:
        return None
    body, mac = blob.split(".")
    try:
        payload, presented = _unb64(body), _unb64(mac)
    except ValueError:
        return None
    if not hmac.compare_digest(presented, _mac(secret, "record", payload)):
        return None
    try:
        record = json.loads(payload)
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("v") == RECORD_VERSION else None


def record_of(sandbox: Sandbox, deployment: str) -> dict[str, Any]:
    limits = sandbox.limits
    return {
        "v": RECORD_VERSION, "deployment": deployment, "id": sandbox.id, "owner": sandbox.owner,
        "template": sandbox.template, "metadata": sandbox.metadata,
        "limits": {"cpu": limits.cpu, "memory_mb": limits.memory_mb, "pids": limits.pids,
                   "disk_mb": limits.disk_mb, "network": limits.network},
        "created_at": sandbox.created_at, "expires_at": sandbox.expires_at,
        "extra": {k: sandbox.extra[k] for k in CARRIED_EXTRA if k in sandbox.extra},
    }


def sandbox_from(record: dict[str, Any]) -> Sandbox:
    """The sandbox a verified record describes (raises KeyError/TypeError/ValueError if the
    record lacks a field: a signed record from another version of the server)."""
    limits = record["limits"]
    extra = record.get("extra") or {}
    return Sandbox(
        id=str(record["id"]), owner=str(record["owner"]), template=str(record["template"]),
        limits=Limits(cpu=float(limits["cpu"]), memory_mb=int(limits["memory_mb"]),
                      pids=int(limits["pids"]), disk_mb=int(limits["disk_mb"]),
                      network=str(limits["network"])),
        metadata={str(k): str(v) for k, v in dict(record.get("metadata") or {}).items()},
        env={}, created_at=float(record["created_at"]),
        expires_at=float(record["expires_at"]),
        extra={k: extra[k] for k in CARRIED_EXTRA if k in extra},
    )
