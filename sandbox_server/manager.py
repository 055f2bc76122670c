"""The lifecycle manager: sandboxes from creation to removal, above the thin Docker driver.

It owns the registry of live sandboxes, enforces limits and caps (:mod:`.limits`), starts
containers (:mod:`.containers`), keeps a warm pool (:mod:`.pool`), notices dead containers,
reaps expired ones, and sweeps containers that no server owns. Sandboxes outlive the server:
at start it takes the deployment's lease (:mod:`.lease`) and adopts what an earlier server
left (:mod:`.adoption`), and it sends each sandbox a heartbeat so that its watchdog
(``runner/relay.py``) stops it only when no server is left. It holds, by composition, the
parts of the data path: :class:`~.runs.Runs` (running code), the one
:class:`~.gateway.RunnerGateway` to the runners, and the one registry of background tasks
(:class:`~.tasks.BackgroundTasks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from .adoption import Adoption
from .channel import ChannelClosed, RunnerChannel
from .containers import HEARTBEAT_MESSAGE, ContainerBoot, container_name
from .driver import DockerDriver, label
from .exceptions import (
    Conflict,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    SandboxGone,
    SandboxStartError,
    ServerError,
    TooManySandboxes,
)
from .gateway import RunnerGateway
from .lease import DeploymentLease, LeaseHeld
from .limits import SandboxSpec, check_caps, check_counts, resolve_request
from .network.gateway import EgressGateway
from .network.policy import EgressPolicy
from .network.resolve import resolve_egress
from .pool import WarmPool
from .records import load_secret, record_of, sign
from .runner.protocol import Op
from .runs import Lifecycle, Runs
from .sandbox import Limits, Sandbox
from .settings import Settings
from .swarm import ClusterSync, SwarmDriver
from .tasks import BackgroundTasks

__all__ = ["SandboxManager", "SandboxSpec"]

logger = logging.getLogger("selfbox.manager")

P = ParamSpec("P")
T = TypeVar("T")

TOMBSTONE_S = 600.0  # how long a dead or expired sandbox still answers with its fate
SWEEP_EVERY_S = 30.0
PAUSE_ACK_WAIT_S = 2.0  # the longest a pause waits for the runner to read a pending ack
class SandboxManager:
    def __init__(self, settings: Settings,
                 driver: DockerDriver | SwarmDriver | None = None) -> None:
        self.settings = settings
        self.driver: DockerDriver | SwarmDriver = driver or (
            SwarmDriver(settings) if settings.backend == "swarm" else DockerDriver())
        # On Swarm, sandboxes are services shared by every API replica (swarm/sync.py).
        self.cluster: ClusterSync | None = (
            ClusterSync(self) if isinstance(self.driver, SwarmDriver) else None)
        self.instance_id = secrets.token_hex(6)
        # Every sandbox this server holds, by id. Besides the manager, only adoption and the
        # cluster sync (its collaborators at start and on Swarm) add or drop entries.
        self.registry: dict[str, Sandbox] = {}
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="docker")
        self.tasks = BackgroundTasks()
        self.gateway = RunnerGateway(settings.runner_reply_timeout_s)
        self.runs = Runs(settings, self.gateway, self.tasks,
                         Lifecycle(end=self.end, notify=self.notify,
                                   detaching=lambda: self._detaching))
        self._reaper: asyncio.Task[None] | None = None
        self.last_sweep = 0.0
        self.counters: dict[str, int] = {"created": 0, "killed": 0, "expired": 0, "died": 0,
                                         "adopted": 0}
        self.observers: list[Callable[[str, dict[str, Any]], None]] = []
        self.pool: WarmPool | None = None
        self.state_secret = b""  # loaded at start (it may live in a file)
        self.lease: DeploymentLease | None = None
        self.adoption = Adoption(self)
        self._heartbeats: asyncio.Task[None] | None = None
        self._detaching = False
        # The egress gateway, for sandboxes with a network policy (started on first use).
        self.egress: EgressGateway | None = (
            EgressGateway(settings, self.driver, self.call)
            if settings.egress_mode != "none" and isinstance(self.driver, DockerDriver)
            else None)
        self.containers = ContainerBoot(settings, self.driver, self.call, self.tasks,
                                        self.instance_id, self.egress)

    # -- plumbing -------------------------------------------------------------------------
    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking driver call on the manager's engine threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def notify(self, event: str, **fields: Any) -> None:
        """Tell the observers (metrics, logs) of a sandbox event."""
        for observer in self.observers:
            with contextlib.suppress(Exception):
                observer(event, fields)

    # -- start and stop -------------------------------------------------------------------
    async def start(self) -> None:
        self.state_secret = await self.call(load_secret, self.settings)
        pooled: list[Sandbox] = []
        try:
            if self.cluster is None:  # on Swarm, replicas share the deployment: no lease
                await self._take_lease()
            report = await self.adoption.adopt_all()
            pooled = report.pool
            logger.info("adopted %d sandboxes and %d pooled ones in %.2f s (%d still busy, "
                        "%d containers removed)", report.adopted, len(report.pool),
                        report.seconds, report.pending, report.removed)
        except LeaseHeld:
            raise
        except ServerError as exc:  # the engine may come up later; /readyz tells
            logger.error("taking over the deployment at start failed: %s", exc)
        self._reaper = self.tasks.spawn(self._reap_forever(), name="reaper")
        self._heartbeats = self.tasks.spawn(self._beat_forever(), name="heartbeats")
        if self.cluster is not None:
            self.cluster.start()
        if self.settings.warm_pool_size > 0:
            template, limits, _ = self.resolve(SandboxSpec())
            self.pool = WarmPool(self.settings.warm_pool_size, template, limits,
                                 self._start_in_time, self.end, self.tasks,
                                 max_size=self.settings.warm_pool_max_size,
                                 idle_s=self.settings.warm_pool_idle_s,
                                 # On Swarm a claim moves a label instead (see _claim).
                                 rename=self._rename_pooled if self.cluster is None else None)
            self.pool.seed(pooled)
            self.pool.start()
        else:
            for sandbox in pooled:
                await self.end(sandbox, "dead", "the warm pool is off")
        with contextlib.suppress(ServerError):
            await self.sweep()  # after the pool took its adopted sandboxes

    async def _take_lease(self) -> None:
        assert isinstance(self.driver, DockerDriver)
        lease = DeploymentLease(self.driver, self.settings.deployment,
                                self.settings.runtime_image, self.instance_id)
        try:
            await self.call(lease.acquire)
        except LeaseHeld as exc:
            logger.critical("%s", exc)
            raise
        self.lease = lease
        self.tasks.spawn(lease.watch(), name="lease")

    async def _beat_forever(self) -> None:
        """Tell every sandbox's watchdog that its server is alive."""
        every = min(5.0, self.settings.orphan_grace_s / 4)
        while True:
            await asyncio.sleep(every)
            channels = [sb.channel for sb in self.registry.values() if sb.alive and sb.channel]
            if self.pool is not None:
                channels += self.pool.channels()
            channels += self.adoption.pending.values()
            await asyncio.gather(*(self._beat(c) for c in channels if c.connected.is_set()))

    @staticmethod
    async def _beat(channel: RunnerChannel) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(channel.send(HEARTBEAT_MESSAGE), 2.0)

    async def save_record(self, sandbox: Sandbox, fields: dict[str, Any] | None = None) -> None:
        """Hand the runner the signed record a restarted server adopts it by (``fields``:
        the record to sign, if not the sandbox's as it is now)."""
        if sandbox.channel is None or not self.state_secret:
            return
        record = sign(self.state_secret, fields or record_of(sandbox, self.settings.deployment))
        await self.gateway.request(sandbox, Op.STATE_PUT, record=record)

    def save_record_soon(self, sandbox: Sandbox) -> None:
        self.tasks.quietly(self.save_record(sandbox), name=f"record-{sandbox.id}")

    def live(self) -> list[Sandbox]:
        return [sb for sb in self.registry.values() if sb.alive]

    def reconnector(self, sandbox: Sandbox) -> Callable[[], Any]:
        """How a dropped channel is attached again while the container still runs."""
        async def reconnect() -> socket.socket | None:
            try:
                info = await self.call(self.driver.inspect, sandbox.container_id)
            except NotFound:
                return None
            if not sandbox.alive or not (info.get("State") or {}).get("Running"):
                return None
            return await self.call(self.driver.attach, sandbox.container_id)
        return reconnect

    async def close(self) -> None:
        for task in (self._reaper, self._heartbeats):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        # On Swarm the sandboxes are every replica's: one replica stopping never ends them.
        if self.settings.shutdown_keeps_sandboxes or self.cluster is not None:
            await self._detach_all()
            return
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), self.settings.shutdown_timeout_s)
        live = [sb for sb in self.registry.values() if sb.alive]
        if live:
            await asyncio.wait(
                [self.tasks.spawn(self.end(sb, "dead", "server shut down")) for sb in live],
                timeout=self.settings.shutdown_timeout_s,
            )
        await self.tasks.cancel_all()
        # Last, anything of this instance still on the engine (a create cut short, say).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._remove_own_containers(),
                                   self.settings.shutdown_timeout_s)
        if self.egress is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.egress.close(), self.settings.shutdown_timeout_s)
        if self.lease is not None:
            await self.call(self.lease.release)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def shutting_down(self) -> None:
        """SIGTERM arrived (called from the signal handler, before requests in flight are
        cancelled): from now on a cut stream leaves its code running for the next server."""
        if self.settings.shutdown_keeps_sandboxes or self.cluster is not None:
            self._detaching = True

    async def _detach_all(self) -> None:
        """Shut down leaving the sandboxes running for the next server (which must be back
        within SELFBOX_ORPHAN_GRACE_S): only channels close, and what no one owns goes."""
        self._detaching = True  # a channel closed from here on is not a death
        if self.pool is not None:
            with contextlib.suppress(Exception):
                # On Swarm no other replica takes this one's pool over: it ends with it.
                await self.pool.close(keep=self.cluster is None)
        # Sandboxes with an egress policy cannot be adopted (the policy stays here): they end
        # now, with the gateway, as on a shutdown that keeps nothing.
        walled = [sb for sb in self.registry.values()
                  if sb.alive and sb.limits.network == "egress"]
        if walled:
            await asyncio.wait(
                [self.tasks.spawn(self.end(sb, "dead", "server shut down")) for sb in walled],
                timeout=self.settings.shutdown_timeout_s)
        if self.egress is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.egress.close(), self.settings.shutdown_timeout_s)
        keep = self._known_containers()
        await self.tasks.cancel_all()
        for sandbox in self.registry.values():
            if sandbox.channel is not None:
                await sandbox.channel.close()
        for channel in list(self.adoption.pending.values()):
            await channel.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._remove_own_containers(keep),
                                   self.settings.shutdown_timeout_s)
        if self.lease is not None:
            await self.call(self.lease.release)
        logger.info("shut down leaving %d sandboxes running for the next server", len(keep))
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _known_containers(self) -> set[str]:
        known = {sb.container_id for sb in self.registry.values()
                 if sb.alive and sb.container_id}
        if self.pool is not None:
            known |= self.pool.container_ids()
        return known | set(self.adoption.pending)

    async def _remove_own_containers(self, keep: set[str] | None = None) -> None:
        mine = await self.call(self.driver.list, {label("instance"): self.instance_id})
        await asyncio.gather(*(self.call(self.driver.remove, c["Id"]) for c in mine
                               if c["Id"] not in (keep or set())
                               and not (c.get("Labels") or {}).get(label("lease"))),
                             return_exceptions=True)

    async def sweep(self, everything: bool = False) -> int:
        """Remove this deployment's containers that no live sandbox of ours owns."""
        if self.cluster is not None:  # another replica's sandboxes are not strays
            return await self.cluster.sweep()
        containers = await self.call(
            self.driver.list, {label("deployment"): self.settings.deployment}
        )
        known = {sb.container_id for sb in self.registry.values() if sb.container_id}
        known |= self._known_containers()
        removed = 0
        for container in containers:
            if container["Id"] in known:
                continue
            labels = container.get("Labels") or {}
            young = time.time() - float(container.get("Created", 0)) < 120
            if labels.get(label("instance")) == self.instance_id and young and not everything:
                continue  # probably being created right now, not yet registered
            await self.call(self.driver.remove, container["Id"])
            removed += 1
        self.last_sweep = time.monotonic()
        return removed

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reaper_interval_s)
            try:
                await self.reap()
            except Exception:
                logger.exception("reaper pass failed")

    async def reap(self) -> None:
        now = time.time()
        for sandbox in list(self.registry.values()):
            if sandbox.state in ("running", "paused") and now >= sandbox.expires_at:
                self.counters["expired"] += 1
                await self.end(sandbox, "expired", "its lifetime (timeout_s) ran out")
            elif not sandbox.alive and sandbox.ended_at and now - sandbox.ended_at > TOMBSTONE_S:
                self.registry.pop(sandbox.id, None)
        if time.monotonic() - self.last_sweep > SWEEP_EVERY_S:
            await self.sweep()

    # -- create ---------------------------------------------------------------------------
    def resolve(self, request: SandboxSpec) -> tuple[str, Limits, float]:
        return resolve_request(self.settings, request)

    async def create(self, owner: str, request: SandboxSpec,
                     extra: dict[str, Any] | None = None) -> Sandbox:
        """A new sandbox; ``extra`` goes into its first record (an API adapter's fields)."""
        template, limits, timeout_s = self.resolve(request)
        egress = resolve_egress(self.settings, limits.network, request.egress)
        check_caps(self.settings, self.registry.values(), owner)
        if self.cluster is not None:  # the caps hold cluster-wide, counted from Swarm
            mine, total = await self.cluster.counts(owner)
            check_counts(self.settings, mine, total)
        now = time.time()
        if self.pool is not None and self.pool.matches(template, limits, request.env):
            pooled = self.pool.take()
            if pooled is not None:
                return await self._claim(pooled, owner, request, now + timeout_s, extra or {})
        sandbox = Sandbox(
            id=secrets.token_hex(10), owner=owner, template=template, limits=limits,
            metadata=dict(request.metadata), env=dict(request.env), created_at=now,
            expires_at=now + timeout_s, egress=egress, extra=dict(extra or {}),
        )
        self.registry[sandbox.id] = sandbox  # reserves the slot against the caps
        try:
            await self._start_in_time(sandbox)
            if self.cluster is not None:
                await self.cluster.confirm_caps(sandbox)
        except BaseException as exc:
            self.registry.pop(sandbox.id, None)
            reason = "over a cap at creation" if isinstance(exc, TooManySandboxes) else \
                "start failed"
            await self.end(sandbox, "dead", reason)
            raise
        sandbox.state = "running"
        self.counters["created"] += 1
        self.notify("created", sandbox=sandbox)
        return sandbox

    async def _claim(self, sandbox: Sandbox, owner: str, request: SandboxSpec,
                     expires_at: float, extra: dict[str, Any]) -> Sandbox:
        # It bears its claimed name before anyone may run code in it: a new server believes
        # a "pool" record only under a pool name (see records.py). The pool renames its next
        # claim ahead of demand, so this is usually no engine call at all. Registered first
        # (still owned by the pool, so no one can reach it) so that a sweep leaves it alone.
        self.registry[sandbox.id] = sandbox
        assert self.pool is not None
        try:
            if self.cluster is not None:  # a service cannot be renamed: its owner label moves
                await self.cluster.claim(sandbox, owner, expires_at)
            elif not await self.pool.named(sandbox):
                await self._rename_pooled(sandbox, True)
        except ServerError:
            self.registry.pop(sandbox.id, None)
            await self.end(sandbox, "dead", "could not be claimed from the pool")
            raise
        sandbox.owner = owner
        sandbox.metadata = dict(request.metadata)
        sandbox.created_at = time.time()
        sandbox.expires_at = expires_at
        sandbox.extra = {**sandbox.extra, **extra}
        # The new record and deadline are written ahead of anything else the sandbox is
        # asked (their tasks run before the next request is read), and answered later. A
        # crash before the runner reads them leaves a pool record under a claimed name: the
        # next server removes that sandbox (it never passes for an unused one).
        self.save_record_soon(sandbox)
        self.tasks.quietly(self.gateway.request(sandbox, Op.SET_DEADLINE, unix=expires_at + 60),
                           name=f"deadline-{sandbox.id}")
        self.counters["created"] += 1
        self.notify("created", sandbox=sandbox)
        return sandbox

    async def _rename_pooled(self, sandbox: Sandbox, claimed: bool) -> None:
        """Give a pooled sandbox its claimed name, or its pool name back."""
        await self.call(self.driver.rename, sandbox.container_id,
                        container_name(sandbox, claimed))

    async def _start_in_time(self, sandbox: Sandbox) -> None:
        try:
            await asyncio.wait_for(self._start(sandbox), self.settings.start_timeout_s)
        except TimeoutError as exc:
            raise SandboxStartError(
                f"the sandbox did not start within {self.settings.start_timeout_s} s "
                "(SELFBOX_START_TIMEOUT_S)") from exc
        except (ChannelClosed, SandboxGone) as exc:
            raise SandboxStartError(f"the sandbox runner exited at start: {exc}") from exc

    async def _start(self, sandbox: Sandbox) -> None:
        channel = await self.containers.boot(sandbox)
        if self.egress is not None and sandbox.egress is not None:
            await self.egress.attach(sandbox.id, sandbox.container_id, sandbox.egress)
        # Defence in depth: the runner exits by itself a minute after its lifetime, should
        # this server be gone by then.
        await self.gateway.request(sandbox, Op.SET_DEADLINE, unix=sandbox.expires_at + 60)
        await self.save_record(sandbox)
        channel.reconnect = self.reconnector(sandbox)
        self.tasks.spawn(self.watch(sandbox, channel), name=f"watch-{sandbox.id}")

    async def watch(self, sandbox: Sandbox, channel: RunnerChannel) -> None:
        """Notice a container that died on its own (OOM, killed from outside)."""
        await channel.closed.wait()
        if not sandbox.alive or self._detaching:
            return
        if self.cluster is not None:  # Swarm tells why, once it knows (a node's heartbeats)
            await self.cluster.channel_lost(sandbox)
            return
        reason = "its container exited"
        try:
            info = await self.call(self.driver.inspect, sandbox.container_id)
            state = info.get("State", {})
            if state.get("Reason"):  # the Swarm back end names the node or the task's end
                reason = str(state["Reason"])
            elif state.get("OOMKilled"):
                reason = (f"it ran out of memory (memory_mb={sandbox.limits.memory_mb}) and "
                          "was killed")
                sandbox.extra["oom"] = True
            else:
                reason = f"its container exited with code {state.get('ExitCode')}"
        except NotFound:
            reason = "its container was removed from outside"
        except ServerError as exc:
            reason = f"its container is unreachable ({exc})"
        self.counters["died"] += 1
        await self.end(sandbox, "dead", reason)

    async def end(self, sandbox: Sandbox, state: str, reason: str, *,
                  remove: bool = True) -> None:
        """End a sandbox for good: ``state`` and ``reason`` are what its owner reads from now
        on; its channel closes and its container goes. ``remove=False`` leaves the container (a
        Swarm service whose task already ended, kept a little while so that every replica
        reads why: swarm/sync.py)."""
        if not sandbox.alive:
            return
        sandbox.state = state  # type: ignore[assignment]
        sandbox.end_reason = reason
        sandbox.ended_at = time.time()
        if sandbox.channel is not None:
            await sandbox.channel.close()
        if self.egress is not None and sandbox.egress is not None:
            await self.egress.detach(sandbox.id)
        if sandbox.container_id and remove:
            try:
                await self.call(self.driver.remove, sandbox.container_id)
            except ServerError as exc:
                logger.error("could not remove container of %s: %s", sandbox.id, exc)
        self.notify("ended", sandbox=sandbox, state=state, reason=reason)

    # -- look-ups -------------------------------------------------------------------------
    def get(self, owner: str, sandbox_id: str, *, alive: bool = True) -> Sandbox:
        sandbox = self.registry.get(sandbox_id)
        if sandbox is None and self.cluster is not None:
            self.cluster.wanted(sandbox_id)  # another replica's: adopted at the next sync
        if sandbox is None or sandbox.owner != owner:
            raise NotFound(f"sandbox {sandbox_id!r} not found", sandbox_id=sandbox_id)
        if alive and not sandbox.alive:
            raise SandboxGone(f"sandbox {sandbox_id} is gone: {sandbox.end_reason}",
                              sandbox_id=sandbox_id, state=sandbox.state)
        return sandbox

    def list(self, owner: str, metadata: dict[str, str] | None = None,
             include_ended: bool = False) -> list[Sandbox]:
        return [
            sb for sb in self.registry.values()
            if sb.owner == owner and (include_ended or sb.alive)
            and all(sb.metadata.get(k) == v for k, v in (metadata or {}).items())
        ]

    def live_count(self) -> int:
        return sum(1 for sb in self.registry.values() if sb.alive)

    async def kill(self, owner: str, sandbox_id: str) -> None:
        sandbox = self.get(owner, sandbox_id, alive=False)
        self.registry.pop(sandbox.id, None)
        if sandbox.alive:
            self.counters["killed"] += 1
            await self.end(sandbox, "dead", "it was killed")

    def set_timeout(self, owner: str, sandbox_id: str, timeout_s: float) -> Sandbox:
        sandbox = self.get(owner, sandbox_id)
        if timeout_s <= 0:
            raise InvalidRequest("timeout_s must be positive", limit="timeout_s")
        if timeout_s > self.settings.max_timeout_s:
            raise LimitExceeded(f"timeout_s={timeout_s} exceeds the server maximum of "
                                f"{self.settings.max_timeout_s} (SELFBOX_MAX_TIMEOUT_S)",
                                limit="timeout_s", maximum=self.settings.max_timeout_s)
        sandbox.expires_at = time.time() + timeout_s
        if sandbox.channel is not None:
            self.tasks.quietly(self.gateway.request(sandbox, Op.SET_DEADLINE,
                                                    unix=sandbox.expires_at + 60))
            self.save_record_soon(sandbox)
        if self.cluster is not None:
            self.cluster.save_expiry_soon(sandbox)
        return sandbox

    async def set_egress(self, owner: str, sandbox_id: str, policy: EgressPolicy) -> Sandbox:
        """Replace a sandbox's egress policy; new connections follow it at once."""
        sandbox = self.get(owner, sandbox_id)
        if sandbox.limits.network != "egress" or sandbox.egress is None or self.egress is None:
            raise Conflict(f"sandbox {sandbox_id} was created with network="
                           f"{sandbox.limits.network!r}, not with an egress policy; a policy "
                           "can only replace another one (create it with one)")
        await self.egress.update(sandbox.id, policy)
        sandbox.egress = policy
        return sandbox

    # -- execution: the data path is Runs -> RunnerGateway.follow -> RunnerChannel ---------
    def execute(self, sandbox: Sandbox, code: str, *, timeout_s: float | None = None,
                context: str = "default",
                tools_answerable: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Run code; see :meth:`Runs.execute`."""
        return self.runs.execute(sandbox, code, timeout_s=timeout_s, context=context,
                                 tools_answerable=tools_answerable)

    async def tool_reply(self, sandbox: Sandbox, call_id: str, ok: bool, value: Any,
                         error: dict[str, str] | None) -> None:
        await self.runs.tool_reply(sandbox, call_id, ok, value, error)

    # -- pause / resume (docker pause freezes the cgroup) ---------------------------------
    async def pause(self, sandbox: Sandbox) -> None:
        if sandbox.state != "running":
            raise Conflict(f"sandbox {sandbox.id} is {sandbox.state}, not running")
        if sandbox.channel is not None and sandbox.channel.unconfirmed:
            # The last execution's ack (sent with the next write) must be read before the
            # runner freezes: a server adopting the paused sandbox would find that run.
            with contextlib.suppress(ServerError):
                await self.gateway.request(sandbox, Op.PING, timeout_s=PAUSE_ACK_WAIT_S)
        await self.call(self.driver.pause, sandbox.container_id)
        sandbox.state = "paused"

    async def resume(self, sandbox: Sandbox) -> None:
        if sandbox.state == "paused":
            await self.call(self.driver.unpause, sandbox.container_id)
            sandbox.state = "running"

    async def stats(self, sandbox: Sandbox) -> dict[str, Any]:
        return await self.call(self.driver.stats, sandbox.container_id)
