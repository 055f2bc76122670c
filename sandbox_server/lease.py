"""One server per deployment: a lease held as a container named ``selfbox-lease-<deployment>``.

Docker container names are unique on an engine, so creating that container is an atomic
test-and-set. Its only process (``cat``) reads its stdin, which is the holder's attach
connection, and the container is created with ``StdinOnce``: when the holder's connection
closes — a clean exit, a ``kill -9``, a crash — stdin reaches end of file, ``cat`` exits and
the lease is free at once. A second server finds the container running and refuses to start
with a message naming ``SELFBOX_DEPLOYMENT``; a successor finds it exited (or, after a crash
between create and start, stuck in "created") and replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from datetime import datetime
from typing import Any

from .driver import ContainerSpec, DockerDriver, label
from .exceptions import Conflict, NotFound, ServerError

__all__ = ["DeploymentLease", "LeaseHeld"]

logger = logging.getLogger("selfbox.lease")

STALE_CREATED_S = 30.0  # a lease container created but never started, by a crashed holder
ATTEMPTS = 3
REACQUIRE_WINDOW_S = 10.0


class LeaseHeld(ServerError):
    status_code = 409
    error_code = "deployment_in_use"


class DeploymentLease:
    def __init__(self, driver: DockerDriver, deployment: str, image: str,
                 instance_id: str) -> None:
        self.driver = driver
        self.deployment = deployment
        self.image = image
        self.instance_id = instance_id
        self.name = f"selfbox-lease-{deployment}"
        self.container_id: str | None = None
        self._sock: socket.socket | None = None

    def acquire(self) -> None:
        """Take the lease or raise :class:`LeaseHeld` (blocking: run it in a thread)."""
        for _ in range(ATTEMPTS):
            try:
                container_id = self.driver.create(self._spec(), name=self.name,
                                                  stdin_once=True)
            except Conflict:
                self._clear_stale()
                continue
            try:
                sock = self.driver.attach(container_id)
                self.driver.start(container_id)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.driver.remove(container_id)
                raise
            self.container_id, self._sock = container_id, sock
            return
        raise LeaseHeld(self._held_message())

    def release(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv
            with contextlib.suppress(OSError):
                sock.close()
        if self.container_id is not None:
            with contextlib.suppress(Exception):
                self.driver.remove(self.container_id)
            self.container_id = None

    async def watch(self) -> None:
        """Wait until the lease connection drops (the socket proxy restarted, say), then take
        the lease again; run as a background task for the server's life."""
        while True:
            sock = self._sock
            if sock is None:
                return
            await asyncio.to_thread(_wait_closed, sock)
            if self._sock is not sock:
                return  # released on purpose
            logger.warning("the deployment lease connection dropped; taking the lease again")
            delay, held_since = 0.2, None
            while True:
                try:
                    await asyncio.to_thread(self.acquire)
                    break
                except LeaseHeld as exc:
                    # Docker may not have closed the old lease's stdin yet: give it a moment.
                    held_since = held_since or time.monotonic()
                    if time.monotonic() - held_since > REACQUIRE_WINDOW_S:
                        logger.critical("%s; this server no longer owns the deployment", exc)
                        return
                except ServerError as exc:
                    logger.warning("could not take the lease again: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _spec(self) -> ContainerSpec:
        return ContainerSpec(
            image=self.image, cpu=0.05, memory_mb=16, pids=4, disk_mb=1,
            labels={label("lease"): self.deployment, label("instance"): self.instance_id},
            command=("cat",),
        )

    def _clear_stale(self) -> None:
        """Remove the lease container if its holder is gone; leave it if it is held."""
        try:
            info: dict[str, Any] = self.driver.inspect(self.name)
        except NotFound:
            return  # removed meanwhile: try again
        state = info.get("State") or {}
        status = state.get("Status")
        if status in ("running", "restarting", "paused"):
            raise LeaseHeld(self._held_message())
        if status == "created" and _age_s(info.get("Created", "")) < STALE_CREATED_S:
            raise LeaseHeld(self._held_message())  # its holder is starting right now
        logger.info("taking over the lease of a server that is gone (%s)", status)
        self.driver.remove(info["Id"])

    def _held_message(self) -> str:
        return (f"another selfbox server holds the deployment {self.deployment!r} on this "
                f"Docker engine (its lease container {self.name} is running): stop it, or "
                "give this server another SELFBOX_DEPLOYMENT")


def _wait_closed(sock: socket.socket) -> None:
    """Block until the peer closes (the attach stream sends nothing: ``cat`` echoes only what
    we write, and we write nothing)."""
    try:
        sock.settimeout(None)
        while sock.recv(4096):
            pass
    except OSError:
        pass


def _age_s(created: str) -> float:
    """Seconds since Docker's RFC 3339 ``Created`` time (nanoseconds, ``Z``)."""
    try:
        stamp = datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return STALE_CREATED_S  # unreadable: treat as stale
    return time.time() - stamp.timestamp()
