"""What the runner keeps for a server that re-attaches: the server's signed state record and
the messages of the latest execution.

An attach to a running container only sees output written after it: whatever the runner sent
while no server was listening is gone from the wire. The messages of the latest execution
(stdout, results, the error, ``done``) are therefore also kept here, numbered (``seq``), and a
``resync`` replays those the server has not seen. The record is opaque to the runner: the
server signs it, so user code (which shares this process) can read or drop it but not forge
one.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .protocol import Msg

EXECUTION_MESSAGES = frozenset({Msg.STREAM, Msg.RESULT, Msg.ERROR, Msg.FINAL_ANSWER, Msg.DONE,
                                Msg.TOOL_CALL})
ENDING_MESSAGES = frozenset({Msg.DONE, Msg.ERROR, Msg.FINAL_ANSWER})
MAX_KEPT_BYTES = 16 * 1024 * 1024  # beyond this only the messages that end a run are kept
MAX_RECORD_BYTES = 64 * 1024


class Outbox:
    def __init__(self) -> None:
        self.record: str | None = None
        self._lock = threading.Lock()
        self._run: dict[str, Any] | None = None

    def begin(self, execution_id: str, timeout_s: float | None) -> None:
        with self._lock:
            self._run = {"id": execution_id, "timeout_s": timeout_s,
                         "started_at": time.time(), "messages": [], "bytes": 0, "seq": 0,
                         "finished": False, "dropped": 0}

    def tap(self, message: dict[str, Any]) -> int | None:
        """Called for every message the runner sends: the number of one of the latest run's
        (kept, with its number, for a replay), else None."""
        if message.get("type") not in EXECUTION_MESSAGES:
            return None
        data = message.get("data")
        size = len(str(message.get("text") or message.get("value") or "")) + (
            sum(len(str(v)) for v in data.values()) if isinstance(data, dict) else 0)
        with self._lock:
            run = self._run
            if run is None or message.get("id") != run["id"]:
                return None
            run["seq"] += 1
            seq: int = run["seq"]
            ends = message["type"] in ENDING_MESSAGES
            if run["bytes"] + size > MAX_KEPT_BYTES and not ends:
                run["dropped"] += 1
                return seq
            run["bytes"] += size
            run["messages"].append({**message, "seq": seq})
            if message["type"] == Msg.DONE:
                run["finished"] = True
            return seq

    def ack(self, execution_id: object) -> None:
        """The server delivered this run to its caller: no need to replay it."""
        with self._lock:
            if self._run is not None and self._run["id"] == execution_id:
                self._run = None

    def put_record(self, record: object) -> None:
        if not isinstance(record, str) or len(record) > MAX_RECORD_BYTES:
            raise ValueError("a state record is a string of at most 64 KiB")
        self.record = record

    def snapshot(self, since: dict[str, Any] | None = None) -> dict[str, Any]:
        """The record and the latest run, without the messages the server says it has."""
        with self._lock:
            run = self._run
            execution = None
            if run is not None:
                seen = int((since or {}).get(run["id"], 0) or 0)
                execution = {
                    "id": run["id"], "timeout_s": run["timeout_s"],
                    "started_at": run["started_at"], "finished": run["finished"],
                    "dropped": run["dropped"],
                    "messages": [m for m in run["messages"] if m.get("seq", 0) > seen],
                }
        return {"record": self.record, "execution": execution}
