"""How a sandbox becomes a running container: its labels, its command, its hardened spec, and a
boot that ends when the runner inside says hello. The manager decides when; this says how.

The boot records the container and its channel on the sandbox as soon as each exists, so that
whoever cleans up after a start that failed or was cancelled halfway removes what was made.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from .channel import RunnerChannel
from .driver import ContainerSpec, DockerDriver, label
from .exceptions import InvalidRequest, LimitExceeded, NotFound, SandboxStartError
from .gateway import check_hello
from .inbound import ChannelLimits
from .network.gateway import Call, EgressGateway
from .pool import POOL_OWNER
from .records import POOL_NAME_PREFIX
from .runner.protocol import Op
from .sandbox import Sandbox
from .settings import Settings
from .swarm import SwarmDriver
from .tasks import BackgroundTasks

__all__ = ["HEARTBEAT_MESSAGE", "ContainerBoot", "container_name", "relay_command"]

HEARTBEAT_MESSAGE: Final = {"op": Op.HEARTBEAT}  # serialises to the relay's HEARTBEAT_LINE
CLAIMED_NAME_PREFIX: Final = "selfbox-"


def relay_command(orphan_grace_s: float, wait_for_server: bool = False) -> tuple[str, ...]:
    """The container's command: the watchdog relay, which starts the runner."""
    wait = ("--wait-for-server",) if wait_for_server else ()
    return ("python3", "-m", "selfbox_runner.relay", "--orphan-grace-s", f"{orphan_grace_s:g}",
            *wait, "--module", "selfbox_runner")


def container_name(sandbox: Sandbox, claimed: bool | None = None) -> str:
    """``selfbox-pool-<id>`` for a pooled sandbox, ``selfbox-<id>`` once claimed (or created
    for its owner); ``claimed`` overrides what the owner says."""
    if claimed is None:
        claimed = sandbox.owner != POOL_OWNER
    return f"{CLAIMED_NAME_PREFIX if claimed else POOL_NAME_PREFIX}{sandbox.id}"


class ContainerBoot:
    def __init__(self, settings: Settings, driver: DockerDriver | SwarmDriver, call: Call,
                 tasks: BackgroundTasks, instance_id: str, egress: EgressGateway | None,
                 ) -> None:
        self.settings = settings
        self.driver = driver
        self._call = call  # runs a blocking driver call off the event loop
        self.tasks = tasks
        self.instance_id = instance_id
        self.egress = egress
        # Swarm starts the task before anyone attaches: its relay waits for a first line.
        self.clustered = isinstance(driver, SwarmDriver)

    def labels(self, sandbox: Sandbox) -> dict[str, str]:
        return {
            label("managed"): "true",
            label("deployment"): self.settings.deployment,
            label("instance"): self.instance_id,
            label("sandbox-id"): sandbox.id,
            label("owner"): sandbox.owner,
            label("template"): sandbox.template,
            label("expires-at"): f"{sandbox.expires_at:.0f}",
        }

    async def spec(self, sandbox: Sandbox) -> ContainerSpec:
        network = sandbox.limits.network
        files: tuple[tuple[str, str], ...] = ()
        if network == "egress":
            if self.egress is None:
                raise LimitExceeded("egress policies are disabled on this server "
                                    "(SELFBOX_EGRESS_MODE=none)", limit="egress")
            await self.egress.ensure()
            # The gateway's network, and its DNS as the sandbox's only resolver.
            network = self.egress.network
            files = ((self.egress.resolv_conf(), "/etc/resolv.conf"),)
        return ContainerSpec(
            image=sandbox.template, labels=self.labels(sandbox), cpu=sandbox.limits.cpu,
            memory_mb=sandbox.limits.memory_mb, pids=sandbox.limits.pids,
            disk_mb=sandbox.limits.disk_mb, network=network, env=sandbox.env,
            runtime=self.settings.docker_runtime, read_only_files=files,
            command=relay_command(self.settings.orphan_grace_s, wait_for_server=self.clustered),
        )

    def _create(self, spec: ContainerSpec, name: str) -> str:
        # The image is looked up only when the create fails: one engine round trip less on
        # every start (the common case), the same clear error for a missing template.
        try:
            return self.driver.create(spec, name)
        except NotFound:
            if not self.driver.image_exists(spec.image):
                raise InvalidRequest(
                    f"template image {spec.image!r} is not built on this host; run "
                    "`selfbox images build`", limit="template") from None
            raise

    async def boot(self, sandbox: Sandbox) -> RunnerChannel:
        """Create, attach and start the sandbox's container; its channel once the runner
        has said hello in a protocol this server speaks."""
        spec = await self.spec(sandbox)
        creating = asyncio.ensure_future(
            self._call(self._create, spec, container_name(sandbox)))
        try:
            sandbox.container_id = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # The thread goes on creating the container: learn its id, so that whoever
            # cleans up after this cancelled start can remove it.
            with contextlib.suppress(Exception):
                sandbox.container_id = await creating
            raise
        sock = await self._call(self.driver.attach, sandbox.container_id)
        channel = RunnerChannel(sock, sandbox.id, ChannelLimits.of(self.settings))
        sandbox.channel = channel
        await channel.start(self.tasks)
        await self._call(self.driver.start, sandbox.container_id)
        if self.clustered:  # the relay starts the runner on the server's first line
            await channel.send(HEARTBEAT_MESSAGE)
        ready = asyncio.create_task(channel.ready.wait())
        closed = asyncio.create_task(channel.closed.wait())
        await asyncio.wait({ready, closed}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        closed.cancel()
        if not channel.ready.is_set():
            detail = channel.stderr_tail.decode("utf-8", "replace").strip()[-500:]
            raise SandboxStartError(f"the sandbox runner exited at start: {detail or 'no output'}")
        check_hello(channel.hello)
        return channel
