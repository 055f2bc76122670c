"""Port forwarding into the sandbox, like ``kubectl port-forward``: the host asks the runner to
open a TCP connection to ``127.0.0.1:<port>`` *inside* the sandbox and relays bytes over the
protocol channel (base64 in NDJSON). The sandbox keeps ``network=none``.

Flow control is credit based in both directions, so neither end buffers without bound:

* host -> sandbox: ``pf_write`` is a request; the host sends the next chunk only after the
  reply, which comes once the bytes are in the socket (one chunk in flight per connection).
* sandbox -> host: the reader thread sends ``{"type": "pf", "id": key, "event": "data"}`` only
  while it holds credit; the host grants more with ``pf_ack`` as its client consumes the data.
  The host also enforces the window (it does not trust this code: user code shares the
  process).

Stdlib only, like the rest of the runner.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from .channel import Channel
from .protocol import Msg, Op

__all__ = ["CHUNK_BYTES", "MAX_CONNECTIONS", "PortForwards", "ops"]

CHUNK_BYTES = 64 << 10  # one data message at most (before base64)
DEFAULT_WINDOW_BYTES = 256 << 10
MAX_WINDOW_BYTES = 4 << 20
MAX_CONNECTIONS = 64
CONNECT_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 30.0
IDLE_CHECK_S = 1.0

OpHandler = Callable[[dict[str, Any]], dict[str, Any] | None]


class _Forward:
    def __init__(self, key: str, sock: socket.socket, window: int) -> None:
        self.key = key
        self.sock = sock
        self.credit = window
        self.closed = False
        self.cond = threading.Condition()


class PortForwards:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._lock = threading.Lock()
        self._forwards: dict[str, _Forward] = {}

    def open(self, message: dict[str, Any]) -> dict[str, Any]:
        key = str(message.get("key") or "")
        port = message.get("port")
        if not key:
            raise ValueError("key is required")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be 1..65535, got {port!r}")
        window = message.get("window")
        window = min(int(window), MAX_WINDOW_BYTES) if isinstance(window, int) and window > 0 \
            else DEFAULT_WINDOW_BYTES
        with self._lock:
            if len(self._forwards) >= MAX_CONNECTIONS:
                raise OverflowError(f"more than {MAX_CONNECTIONS} forwarded connections")
            if key in self._forwards:
                raise FileExistsError(f"forward {key} exists")
        # Only the sandbox's own loopback: this is ingress to a server in the sandbox, never
        # a way to make the sandbox connect elsewhere.
        sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S)
        sock.settimeout(SEND_TIMEOUT_S)
        forward = _Forward(key, sock, window)
        with self._lock:
            self._forwards[key] = forward
        threading.Thread(target=self._pump, args=(forward,), name=f"pf-{key}",
                         daemon=True).start()
        return {"port": port}

    def _send(self, forward: _Forward, fields: dict[str, Any]) -> None:
        self.channel.send({"type": Msg.PF, "id": forward.key, **fields})

    def _pump(self, forward: _Forward) -> None:
        """Socket -> host, within the credit the host granted."""
        error = ""
        try:
            while True:
                with forward.cond:
                    while forward.credit <= 0 and not forward.closed:
                        forward.cond.wait(IDLE_CHECK_S)
                    if forward.closed:
                        return
                    want = min(forward.credit, CHUNK_BYTES)
                try:
                    chunk = forward.sock.recv(want)
                except TimeoutError:
                    continue  # an idle server: keep waiting (the host closes idle tunnels)
                if not chunk:
                    break
                with forward.cond:
                    forward.credit -= len(chunk)
                self._send(forward, {"event": "data",
                                     "data": base64.b64encode(chunk).decode("ascii")})
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if not forward.closed:
            self._send(forward, {"event": "eof", **({"error": error} if error else {})})

    def _find(self, message: dict[str, Any]) -> _Forward:
        key = str(message.get("key") or "")
        with self._lock:
            forward = self._forwards.get(key)
        if forward is None:
            raise KeyError(f"no forwarded connection {key!r}")
        return forward

    def write(self, message: dict[str, Any]) -> None:
        forward = self._find(message)
        data = base64.b64decode(str(message.get("data") or ""), validate=True)
        if message.get("half_close"):
            with contextlib.suppress(OSError):
                forward.sock.shutdown(socket.SHUT_WR)
            return
        forward.sock.sendall(data)

    def ack(self, message: dict[str, Any]) -> None:
        forward = self._find(message)
        granted = message.get("bytes")
        if not isinstance(granted, int) or granted <= 0:
            raise ValueError("bytes must be a positive integer")
        with forward.cond:
            forward.credit = min(forward.credit + granted, MAX_WINDOW_BYTES)
            forward.cond.notify()

    def close(self, message: dict[str, Any]) -> None:
        key = str(message.get("key") or "")
        with self._lock:
            forward = self._forwards.pop(key, None)
        if forward is None:
            return
        with forward.cond:
            forward.closed = True
            forward.cond.notify()
        with contextlib.suppress(OSError):
            forward.sock.shutdown(socket.SHUT_RDWR)
        forward.sock.close()


def ops(channel: Channel) -> dict[str, OpHandler]:
    """The ops to merge into ``kernel.extra_ops``."""
    forwards = PortForwards(channel)
    return {Op.PF_OPEN: forwards.open, Op.PF_WRITE: forwards.write, Op.PF_ACK: forwards.ack,
            Op.PF_CLOSE: forwards.close}
