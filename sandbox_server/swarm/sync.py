"""Swarm's services as the one list of sandboxes that every API replica shares.

Each replica reads the deployment's sandbox services every ``SELFBOX_SWARM_SYNC_S``:

- a running one it does not hold is adopted (attached through its node's proxy, ``resync``,
  its signed record verified: :mod:`..adoption`), so any replica serves any sandbox and a
  replica that dies loses none (the others already hold them and keep their watchdogs fed);
- one it holds whose task ended, or whose node is down or drained, ends as ``dead`` with the
  reason naming the node (not re-created: ``RestartPolicy none``);
- one it holds whose service is gone was killed through another replica.

The caps are counted from the same list, so they hold cluster-wide: read before a create, and
confirmed once the service exists (two replicas creating at the same instant may both pass the
read; the later of the two services, in Swarm's order, then backs out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from ..adoption import AdoptionReport
from ..driver import label
from ..exceptions import NotFound, ServerError
from ..limits import check_counts
from ..pool import POOL_OWNER
from ..sandbox import Sandbox
from .driver import SwarmDriver

if TYPE_CHECKING:
    from ..manager import SandboxManager

__all__ = ["ClusterSync"]

logger = logging.getLogger("selfbox.swarm")

ADOPT_CONCURRENCY = 8
REFUSED_S = 2.0
EXITED_KEPT_S = 10.0  # an ended task's service stays this long: every replica reads why
LOST_POLL_S = 2.0
OWN_EXPIRY_S = 15.0  # this replica's own label update may not have landed before that
LOST_PATIENCE_S = 90.0  # a channel lost while Swarm still says "running" (node heartbeats)
REMOVED = "its service was removed (killed through another API replica, or from outside)"


def _pooled(entry: dict[str, Any]) -> bool:
    """A replica's warm pool: its own, never adopted by another (it ends with its replica)."""
    return (entry.get("Labels") or {}).get(label("owner")) == POOL_OWNER


def _follow_expiry(sandbox: Sandbox, entry: dict[str, Any]) -> None:
    try:
        labelled = float((entry.get("Labels") or {}).get(label("expires-at"), ""))
    except ValueError:
        return
    if abs(labelled - sandbox.expires_at) > 1.0:  # the label is whole seconds
        sandbox.expires_at = labelled


def _live(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["State"] != "exited" and not _pooled(e)]


def _owned(entries: list[dict[str, Any]], owner: str) -> int:
    return sum(1 for e in entries if (e.get("Labels") or {}).get(label("owner")) == owner)


def ranks(entries: list[dict[str, Any]], service: str, owner: str) -> tuple[int, int]:
    """How many live sandboxes come before ``service`` in the order every replica agrees on:
    the owner's, and all (``(0, 0)`` when it is not listed)."""
    ordered = sorted(_live(entries), key=lambda e: (e.get("Created") or 0.0, e["Id"]))
    names = [e["Id"] for e in ordered]
    if service not in names:
        return 0, 0
    ahead = ordered[:names.index(service)]
    return _owned(ahead, owner), len(ahead)


class ClusterSync:
    def __init__(self, manager: SandboxManager) -> None:
        self.manager = manager
        self._wake = asyncio.Event()
        self._adopting: set[str] = set()
        self._refused: dict[str, float] = {}  # service -> when adoption last failed
        self._exited: dict[str, float] = {}  # service -> when first seen ended
        self._own_expiry: dict[str, float] = {}  # sandbox -> when this replica changed it
        self._gate = asyncio.Semaphore(ADOPT_CONCURRENCY)
        self.last: list[dict[str, Any]] = []

    @property
    def driver(self) -> SwarmDriver:
        driver = self.manager.driver
        assert isinstance(driver, SwarmDriver)
        return driver

    def start(self) -> None:
        self.manager.tasks.spawn(self._forever(), name="swarm-sync")

    def wanted(self, sandbox_id: str) -> None:
        """A request named a sandbox this replica does not hold: look at Swarm now."""
        self._wake.set()

    async def _forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.manager.settings.swarm_sync_s)
            self._wake.clear()
            try:
                await self.sync()
            except ServerError as exc:
                logger.warning("reading the sandbox services from Swarm failed: %s", exc)
            except Exception:
                logger.exception("swarm sync failed")

    async def _entries(self) -> list[dict[str, Any]]:
        manager = self.manager
        entries = await manager.call(
            self.driver.list, {label("deployment"): manager.settings.deployment})
        self.last = entries
        return entries

    async def sync(self) -> None:
        manager = self.manager
        entries = await self._entries()
        by_id = {(e.get("Labels") or {}).get(label("sandbox-id"), ""): e for e in entries}
        for sandbox in list(manager.registry.values()):
            if sandbox.state not in ("running", "paused"):
                continue  # being created here (its service may not exist yet), or ended
            entry = by_id.get(sandbox.id)
            if entry is None:
                await manager.end(sandbox, "dead", REMOVED, remove=False)
            elif entry["State"] == "exited":
                manager.counters["died"] += 1
                await manager.end(sandbox, "dead", str(entry.get("Reason") or "its task ended"),
                                  remove=False)
            elif time.monotonic() - self._own_expiry.get(sandbox.id, 0.0) > OWN_EXPIRY_S:
                _follow_expiry(sandbox, entry)  # changed through another replica
        for sandbox_id, entry in by_id.items():
            if (entry["State"] == "running" and not _pooled(entry)
                    and sandbox_id not in manager.registry
                    and entry["Id"] not in manager.adoption.pending
                    and entry["Id"] not in self._adopting
                    and time.monotonic() - self._refused.get(entry["Id"], 0.0) > REFUSED_S):
                self._adopting.add(entry["Id"])
                manager.tasks.spawn(self._adopt(entry), name=f"adopt-{entry['Id']}")

    async def _adopt(self, entry: dict[str, Any]) -> None:
        try:
            async with self._gate:
                await self.manager.adoption._adopt(entry, AdoptionReport())
        except Exception as exc:  # one sandbox never stops the others
            logger.warning("could not adopt %s: %s", entry["Id"], exc)
        finally:
            self._adopting.discard(entry["Id"])

    async def channel_lost(self, sandbox: Sandbox) -> None:
        """A sandbox's channel closed for good: end it with Swarm's reason (its node down or
        drained, its task ended, its service removed), leaving the service for the other
        replicas to read; or, when its task still runs and its node's proxy answers, hand it
        to the next sync to re-adopt. Bounded by LOST_PATIENCE_S."""
        manager = self.manager
        deadline = time.monotonic() + LOST_PATIENCE_S
        while sandbox.alive and time.monotonic() < deadline:
            try:
                state = (await manager.call(self.driver.inspect, sandbox.container_id)
                         )["State"]
            except NotFound:
                await manager.end(sandbox, "dead", REMOVED, remove=False)
                return
            except ServerError:
                state = {}
            if state.get("Reason"):
                manager.counters["died"] += 1
                await manager.end(sandbox, "dead", str(state["Reason"]), remove=False)
                return
            if state.get("Running") and await self._reachable(sandbox):
                if manager.registry.get(sandbox.id) is sandbox:
                    del manager.registry[sandbox.id]  # re-adopted at once, on a new channel
                self._wake.set()
                return
            await asyncio.sleep(LOST_POLL_S)
        if sandbox.alive:
            await manager.end(sandbox, "dead", "its channel was lost and its node did not "
                              f"answer for {LOST_PATIENCE_S:g} s")

    async def _reachable(self, sandbox: Sandbox) -> bool:
        try:
            sock = await asyncio.wait_for(
                self.manager.call(self.driver.attach, sandbox.container_id), 10)
        except (ServerError, TimeoutError):
            return False
        sock.close()
        return True

    def refused(self, name: str) -> None:
        """Adoption failed (a record not yet saved by the replica creating it, say): try
        again after a while, never remove it for that."""
        self._refused[name] = time.monotonic()
        if len(self._refused) > 10_000:  # bounded: forget the oldest half
            for old in sorted(self._refused, key=self._refused.__getitem__)[:5_000]:
                del self._refused[old]

    async def counts(self, owner: str) -> tuple[int, int]:
        """Live sandbox services: the caller's, and all of the deployment's."""
        live = _live(await self._entries())
        return _owned(live, owner), len(live)

    async def confirm_caps(self, sandbox: Sandbox) -> None:
        """Create, then check: the count before a create is read, not locked, so two replicas
        creating at once may both pass it. Once the service exists, every replica sees the
        same order (Swarm's creation time, then the name): a sandbox with a cap's worth ahead
        of it backs out (raises the cap's 429), the earlier ones stay."""
        mine, total = ranks(await self._entries(), sandbox.container_id, sandbox.owner)
        check_counts(self.manager.settings, mine, total)

    async def sweep(self) -> int:
        """Remove the services no replica will end: a task that ended and that this replica
        does not hold, or a lifetime long past (no replica fed its watchdog)."""
        manager = self.manager
        grace = manager.settings.orphan_grace_s
        removed = 0
        for entry in await self._entries():
            labels = entry.get("Labels") or {}
            held = manager.registry.get(labels.get(label("sandbox-id"), ""))
            if held is not None and held.alive:
                continue
            try:
                expires_at = float(labels.get(label("expires-at"), "0"))
            except ValueError:
                expires_at = 0.0
            if entry["State"] == "exited":
                self._exited.setdefault(entry["Id"], time.monotonic())
            seen_exited = time.monotonic() - self._exited.get(entry["Id"], time.monotonic())
            if seen_exited > EXITED_KEPT_S or time.time() > expires_at + grace:
                self._exited.pop(entry["Id"], None)
                with contextlib.suppress(ServerError):
                    await manager.call(self.driver.remove, entry["Id"])
                    removed += 1
        manager.last_sweep = time.monotonic()
        return removed

    async def claim(self, sandbox: Sandbox, owner: str, expires_at: float) -> None:
        """Take a pooled sandbox out of this replica's pool: its service's owner label (what
        adoption reads as its name: driver.list) and lifetime. Swarm keeps the task."""
        await self.manager.call(self.driver.set_labels, sandbox.container_id, {
            label("owner"): owner, label("expires-at"): f"{expires_at:.0f}"})
        self._own_expiry[sandbox.id] = time.monotonic()

    def save_expiry_soon(self, sandbox: Sandbox) -> None:
        """The lifetime in the service's labels, for every replica (and the sweep)."""
        self._own_expiry[sandbox.id] = time.monotonic()
        if len(self._own_expiry) > 10_000:  # bounded
            self._own_expiry.clear()
        self.manager.tasks.quietly(self.manager.call(
            self.driver.set_labels, sandbox.container_id,
            {label("expires-at"): f"{sandbox.expires_at:.0f}"}), name=f"expiry-{sandbox.id}")
