"""Taking over the live sandboxes of a deployment when a server starts.

For each container of the deployment: a stopped one is removed; a running one is attached to
again (only new output is seen, hence the runner's outbox), asked for its state with
``resync``, and adopted if its signed record verifies (:mod:`.records`) — as a user's sandbox,
or as a warm-pool sandbox under a pool name. The rest is removed.

A runner busy in C code (holding the GIL) cannot answer at once: its container is kept
``pending``, receiving heartbeats so its watchdog does not fire, and adopted when it answers.

An execution that was running (or had finished unseen) when the old server went is handed to
:meth:`~.runs.Runs.recover`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .channel import ChannelClosed, RunnerChannel
from .driver import label
from .exceptions import ServerError
from .pool import POOL_OWNER
from .records import POOL_NAME_PREFIX, sandbox_from, verify
from .runner.protocol import PROTOCOL_VERSION, Op, major
from .sandbox import Sandbox

if TYPE_CHECKING:
    from .manager import SandboxManager

__all__ = ["Adoption", "AdoptionReport"]

logger = logging.getLogger("selfbox.adoption")

RESYNC_TIMEOUT_S = 5.0  # a runner that takes longer is busy: adopted in the background
CONCURRENCY = 16


@dataclass
class AdoptionReport:
    adopted: int = 0
    pool: list[Sandbox] = field(default_factory=list)
    pending: int = 0
    removed: int = 0
    seconds: float = 0.0


class Adoption:
    """Adopts containers for one manager; :attr:`pending` maps container ids to channels."""

    def __init__(self, manager: SandboxManager) -> None:
        self.manager = manager
        self.pending: dict[str, RunnerChannel] = {}

    async def adopt_all(self) -> AdoptionReport:
        manager = self.manager
        started = time.monotonic()
        report = AdoptionReport()
        containers = await manager.call(
            manager.driver.list, {label("deployment"): manager.settings.deployment})
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(container: dict[str, Any]) -> None:
            async with gate:
                try:
                    await self._adopt(container, report)
                except Exception as exc:  # one bad container never stops the start
                    logger.warning("could not adopt container %s: %s", container["Id"][:12], exc)
                    await self._remove(container["Id"], report)

        await asyncio.gather(*(one(c) for c in containers))
        report.seconds = time.monotonic() - started
        return report

    async def _remove(self, container_id: str, report: AdoptionReport | None = None) -> None:
        self.pending.pop(container_id, None)
        if self.manager.cluster is not None:
            # On Swarm another API replica may be creating it right now (no record yet):
            # what no replica can adopt is removed by the cluster's sweep, by its labels.
            self.manager.cluster.refused(container_id)
            return
        with contextlib.suppress(ServerError):
            await self.manager.call(self.manager.driver.remove, container_id)
        if report is not None:
            report.removed += 1

    async def _adopt(self, container: dict[str, Any], report: AdoptionReport) -> None:
        manager = self.manager
        container_id = container["Id"]
        state = container.get("State")
        if state == "starting":  # a Swarm task another API replica is creating right now
            return
        if self.manager.cluster is not None and (container.get("Labels") or {}).get(
                label("owner")) == POOL_OWNER:
            return  # another replica's warm pool on Swarm: never shared
        if state not in ("running", "paused"):
            await self._remove(container_id, report)
            return
        if state == "paused":  # a frozen runner cannot answer: thaw it for the resync
            await manager.call(manager.driver.unpause, container_id)
        labels = container.get("Labels") or {}
        sandbox_id = labels.get(label("sandbox-id"), "")
        sock = await manager.call(manager.driver.attach, container_id)
        channel = RunnerChannel(sock, sandbox_id or container_id[:12])
        await channel.start(manager.tasks)
        # The heartbeat loop reaches pending channels: a busy runner's watchdog must not fire.
        self.pending[container_id] = channel
        request = asyncio.ensure_future(channel.request(Op.RESYNC, timeout_s=None, since={}))
        done, _ = await asyncio.wait({request}, timeout=RESYNC_TIMEOUT_S)
        if not done:
            report.pending += 1
            manager.tasks.spawn(self._finish_later(container, channel, request, state),
                                name=f"adopt-{container_id[:12]}")
            return
        await self._take(container, channel, request.result(), state, report)

    async def _finish_later(self, container: dict[str, Any], channel: RunnerChannel,
                            request: asyncio.Future[dict[str, Any]], state: str) -> None:
        # Busy in C code, or its relay stopped on purpose: either way not past its lifetime
        # as the labels tell it (a lifetime extended later is not in the labels).
        labels = container.get("Labels") or {}
        try:
            expires_at = float(labels.get(label("expires-at"), "0"))
        except ValueError:
            expires_at = 0.0
        patience = max(expires_at - time.time(), 0.0) + self.manager.settings.orphan_grace_s
        try:
            reply = await asyncio.wait_for(request, patience)
        except (ChannelClosed, Exception):
            await channel.close()
            await self._remove(container["Id"])
            return
        report = AdoptionReport()
        await self._take(container, channel, reply, state, report)
        if report.pool:
            pool = self.manager.pool
            if pool is not None:
                pool.seed(report.pool)
            else:
                for sandbox in report.pool:
                    await self.manager.end(sandbox, "dead", "the warm pool is off")

    async def _take(self, container: dict[str, Any], channel: RunnerChannel,
                    reply: dict[str, Any], state: str, report: AdoptionReport) -> None:
        manager = self.manager
        container_id = container["Id"]
        labels = container.get("Labels") or {}
        record = verify(manager.state_secret, reply.get("record"))
        names = [str(n).lstrip("/") for n in container.get("Names") or []]
        reason = _refusal(record, labels, names, manager.settings.deployment)
        if major(reply.get("protocol")) != major(PROTOCOL_VERSION):
            reason = f"its runner speaks protocol {reply.get('protocol')}, not {PROTOCOL_VERSION}"
        if record is not None and reason is None:
            try:
                sandbox = sandbox_from(record)
            except (KeyError, TypeError, ValueError) as exc:
                reason = f"unreadable record ({exc})"
        if record is None or reason is not None:
            logger.warning("not adopting container %s: %s", container_id[:12],
                           reason or "no valid state record")
            await channel.close()
            await self._remove(container_id, report)
            return
        sandbox.container_id = container_id
        sandbox.channel = channel
        sandbox.state = "running"
        for context in reply.get("contexts") or []:
            if isinstance(context, dict) and context.get("id") == "default":
                count = context.get("execution_count")
                sandbox.execution_count = count if isinstance(count, int) else 0
        if sandbox.expires_at <= time.time():
            self.pending.pop(container_id, None)
            await manager.end(sandbox, "expired", "its lifetime ran out while no server ran")
            report.removed += 1
            return
        channel.reconnect = manager.reconnector(sandbox)
        manager.tasks.spawn(manager.watch(sandbox, channel), name=f"watch-{sandbox.id}")
        if state == "paused":
            await manager.call(manager.driver.pause, container_id)
            sandbox.state = "paused"
        if sandbox.owner == POOL_OWNER:
            report.pool.append(sandbox)
            self.pending.pop(container_id, None)  # the caller seeds the pool at once
            return
        manager.registry[sandbox.id] = sandbox
        self.pending.pop(container_id, None)
        report.adopted += 1
        manager.counters["adopted"] += 1
        manager.notify("adopted", sandbox=sandbox)
        execution = reply.get("execution")
        if isinstance(execution, dict) and isinstance(execution.get("id"), str):
            await manager.runs.recover(sandbox, execution)


def _refusal(record: dict[str, Any] | None, labels: dict[str, str], names: list[str],
             deployment: str) -> str | None:
    """Why a verified record may not be believed for this container, or None."""
    if record is None:
        return "no valid state record (another server's secret, or dropped by the code)"
    if record.get("deployment") != deployment:
        return "its record is for another deployment"
    if record.get("id") != labels.get(label("sandbox-id")):
        return "its record is for another sandbox"
    if (record.get("limits") or {}).get("network") == "egress":
        # Its policy lives on the server (header rules may hold secrets that never enter
        # the sandbox), so it cannot be carried over: see docs/operations.md.
        return "a sandbox with an egress policy is not carried across a restart"
    pool_name = f"{POOL_NAME_PREFIX}{record.get('id')}"
    if (record.get("owner") == POOL_OWNER) != (pool_name in names):
        return "its record and its name disagree about the warm pool (claimed, then replayed)"
    return None
