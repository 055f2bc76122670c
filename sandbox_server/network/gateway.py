"""The deployment's egress gateway: one container (HAProxy + dnsmasq, Debian packages) and one
internal Docker network for the sandboxes that have an egress policy.

* The network is ``internal`` (Docker gives it no route out) with inter-container traffic off:
  a sandbox on it can reach nothing but the host's address on the bridge.
* The gateway runs in the host's network namespace and serves DNS, HTTP and HTTPS on exactly
  that address; at start it installs the host rules that confine the sandboxes (only those
  ports on that address; nothing forwarded) and removes them when it stops.
* Sandboxes get ``nameserver <gateway>`` as their resolv.conf; the gateway answers every name
  with its own address and decides per connection (see :mod:`.render`).
* Policies change live, through HAProxy's runtime API (``add map``/``del map`` over its admin
  socket): the allowed names, the sandboxes open to any public name, and the values of the
  header rules (one map per header name the operator allows). Map files are rewritten on
  every change too, so a restart of HAProxy keeps them.

The server needs no privilege for any of this beyond the Docker API it already has. With
``SELFBOX_EGRESS_GATEWAY=external`` it does not even start the gateway: the deployment runs
it (the compose service ``egress-gateway``, sharing the configuration directory as a named
volume); the server writes the configuration and a fresh token into ``ready``, and the
gateway (re)starts on it. A gateway whose ``ready`` token changes or vanishes exits, removing
its host rules, and its restart policy brings it back waiting for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ..driver import DockerDriver
from ..exceptions import ServerError
from ..settings import Settings
from .policy import EgressPolicy, direct_networks
from .render import (
    SLOTS_MAP,
    TCP_APPLIED,
    TCP_GENERATION,
    TCP_RULES,
    map_files,
    member_entries,
    render,
    tcp_chain,
    tcp_rules,
)
from .resolve import operator_policy

__all__ = ["EgressGateway", "GatewayError"]

logger = logging.getLogger("selfbox.egress")

T = TypeVar("T")
Call = Callable[..., Awaitable[Any]]
READY_TIMEOUT_S = 15.0
SOCKET_TIMEOUT_S = 5.0
TCP_APPLY_TIMEOUT_S = 5.0  # the gateway polls for new direct-TCP rules every 50 ms
RESOLV_CONF = "resolv.conf"


class GatewayError(ServerError):
    """The egress gateway could not be started or programmed."""

    error_code = "egress_gateway_unavailable"


def _cli_escape(value: str) -> str:
    # HAProxy's CLI splits arguments on blanks and commands on ";": escape both (and "\\").
    return "".join("\\" + c if c in " \t;\\" else c for c in value)


class EgressGateway:
    def __init__(self, settings: Settings, driver: DockerDriver, call: Call) -> None:
        self.settings = settings
        self.driver = driver
        self._call = call  # runs a blocking driver call off the event loop
        deployment = settings.deployment
        digest = hashlib.sha256(deployment.encode()).hexdigest()[:8]
        self.network = f"selfbox-egress-{deployment}"
        self.container_name = f"selfbox-egress-gw-{deployment}"
        self.bridge = f"sbxeg-{digest}"  # interface names: at most 15 characters
        self.directory = Path(settings.egress_config_dir) / deployment
        self.operator = operator_policy(settings)
        self.gateway_ip: str | None = None
        self._container_id: str | None = None
        self._lock = asyncio.Lock()
        # sandbox id -> (address, slot, policy); the slot numbers its CIDR entries
        self._members: dict[str, tuple[str, int, EgressPolicy]] = {}
        self._tcp_generation = 0
        self._tcp_rules = ""
        self._host_directory: str | None = None  # external: the config dir as the host sees it

    @property
    def labels(self) -> dict[str, str]:
        return {"io.selfbox.egress-gateway": self.settings.deployment}

    # -- lifecycle ------------------------------------------------------------------------
    async def ensure(self) -> str:
        """Start the gateway (once); returns its address on the sandboxes' network."""
        async with self._lock:
            if self.gateway_ip is not None and self._container_id is not None:
                return self.gateway_ip
            try:
                return await self._start()
            except ServerError as exc:
                raise GatewayError(f"the egress gateway did not start: {exc}") from exc

    async def _start(self) -> str:
        gateway_ip: str = await self._call(self.driver.ensure_network, self.network, self.bridge,
                                      self.labels)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in ("ready", "haproxy.sock", "master.sock", TCP_APPLIED, TCP_GENERATION):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / stale).unlink()
        files = render(gateway_ip=gateway_ip, directory=str(self.directory),
                       operator=self.operator, upstream_dns=self.settings.egress_upstream_dns,
                       header_names=self.settings.egress_header_names,
                       socket_uid=os.getuid())
        self._write("haproxy.cfg", files.haproxy_cfg)
        self._write("dnsmasq.conf", files.dnsmasq_conf)
        self._write(RESOLV_CONF, files.resolv_conf, mode=0o644)
        for name, content in files.static.items():
            self._write(name, content)
        self._tcp_generation = 0
        self._tcp_rules = tcp_rules(self.bridge, [])
        self._write(TCP_RULES, self._tcp_rules)
        self._write("gateway.env", f"BRIDGE={self.bridge}\nGATEWAY_IP={gateway_ip}\n"
                                   f"TAG=selfbox-egress-{self.settings.deployment}\n"
                                   f"CHAIN={tcp_chain(self.bridge)}\n")
        if self.settings.egress_gateway == "external":
            self._host_directory = await self._external_host_directory()
            self._write("ready", f"{time.time_ns()}\n", mode=0o644)
            self._container_id = "external"
            where = ("the deployment's gateway (compose: `docker compose --profile egress "
                     "up -d`, service egress-gateway)")
        else:
            self._write("ready", "")
            self._container_id = await self._call(
                self.driver.run_gateway, self.settings.egress_gateway_image,
                self.container_name, str(self.directory), self.labels)
            where = f"`docker logs {self.container_name}`"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (self.directory / "haproxy.sock").exists():
            if time.monotonic() > deadline:
                raise GatewayError(f"the egress gateway did not come up within "
                                   f"{READY_TIMEOUT_S} s; see {where}")
            await asyncio.sleep(0.05)
        self.gateway_ip = gateway_ip
        logger.info("egress gateway up on %s (%s)", gateway_ip, self.network)
        return gateway_ip

    async def _external_host_directory(self) -> str | None:
        """Sandboxes bind-mount the gateway's resolv.conf by host path: when the server runs
        in a container (compose) with the configuration directory on a named volume, that is
        the volume's data directory on the host. None: the path is the same on the host."""
        try:
            source = await self._call(self.driver.mount_source, socket.gethostname(),
                                      self.settings.egress_config_dir)
        except ServerError:
            return None  # not a container of this engine: a plain host path
        if source is None:
            return None
        return str(Path(str(source)) / self.settings.deployment)

    async def close(self) -> None:
        async with self._lock:
            if self._container_id == "external":
                # The gateway sees its token go, removes its host rules and restarts.
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / "ready").unlink()
            elif self._container_id is not None:
                with contextlib.suppress(ServerError):
                    await self._call(self.driver.stop, self._container_id, 5)
            with contextlib.suppress(ServerError):
                await self._call(self.driver.remove_network, self.network)
            self._container_id = None
            self.gateway_ip = None
            self._members.clear()

    def _write(self, name: str, content: str, mode: int = 0o600) -> None:
        path = self.directory / name
        tmp = path.with_name(f".{name}.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as out:
            out.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)  # atomic: HAProxy never reads half a file

    # -- what a sandbox container needs ---------------------------------------------------
    def resolv_conf(self) -> str:
        return str(Path(self._host_directory or self.directory) / RESOLV_CONF)

    # -- members --------------------------------------------------------------------------
    async def attach(self, sandbox_id: str, container_id: str, policy: EgressPolicy) -> str:
        ip = str(await self._call(self.driver.container_ip, container_id, self.network))
        async with self._lock:
            used = {slot for _, slot, _ in self._members.values()}
            slot = next(i for i in range(1, len(used) + 2) if i not in used)
            self._members[sandbox_id] = (ip, slot, policy)
            await self._apply({}, self._entries(ip, slot, policy))
        return ip

    async def update(self, sandbox_id: str, policy: EgressPolicy) -> None:
        async with self._lock:
            member = self._members.get(sandbox_id)
            if member is None:
                raise GatewayError(f"sandbox {sandbox_id} is not on the egress gateway")
            ip, slot, old = member
            self._members[sandbox_id] = (ip, slot, policy)
            await self._apply(self._entries(ip, slot, old), self._entries(ip, slot, policy))

    async def detach(self, sandbox_id: str) -> None:
        async with self._lock:
            member = self._members.pop(sandbox_id, None)
            if member is not None and self._container_id is not None:
                with contextlib.suppress(GatewayError, OSError):
                    await self._apply(self._entries(*member), {})

    def _entries(self, ip: str, slot: int, policy: EgressPolicy) -> dict[str, dict[str, str]]:
        return member_entries(ip, slot, policy, self.settings.egress_header_names)

    async def _apply(self, old: dict[str, dict[str, str]],
                     new: dict[str, dict[str, str]]) -> None:
        """Move one sandbox's map entries from ``old`` to ``new``: add and change first,
        remove last (no window in which something allowed before and after is refused);
        the files first, so a restart of HAProxy agrees."""
        self._write_maps()
        adds: list[str] = []
        removals: list[str] = []
        for name in map_files(self.settings.egress_header_names):
            path = self.directory / name
            before, after = old.get(name, {}), new.get(name, {})
            for key, value in after.items():
                if before.get(key) != value:
                    verb = "set" if key in before else "add"
                    adds.append(f"{verb} map {path} {key} {_cli_escape(value)}")
            removals += [f"del map {path} {key}" for key in before if key not in after]
        # The slot (which marks the sandbox as known) goes in first and out last.
        slots = str(self.directory / SLOTS_MAP)
        adds.sort(key=lambda c: slots not in c)
        removals.sort(key=lambda c: slots in c)
        if adds or removals:
            await self._runtime(adds + removals)
        await self._program_tcp()

    async def _program_tcp(self) -> None:
        """Direct TCP by address: rewrite the gateway's chain (whole, one transaction) and
        wait until the gateway has loaded it, so a policy is in effect when the call
        returns, like the maps."""
        rules = tcp_rules(self.bridge, [
            (ip, direct_networks(self.operator, policy))
            for ip, _, policy in self._members.values()])
        if rules == self._tcp_rules:
            return
        self._tcp_generation += 1
        generation = self._tcp_generation
        self._write(TCP_RULES, rules)
        self._write(TCP_GENERATION, f"{generation}\n", mode=0o644)
        self._tcp_rules = rules
        deadline = time.monotonic() + TCP_APPLY_TIMEOUT_S
        while True:
            try:
                done, _, status = (self.directory / TCP_APPLIED).read_text().partition(" ")
            except FileNotFoundError:
                done, status = "0", ""
            if done.isdigit() and int(done) >= generation:
                if not status.startswith("ok"):
                    self._tcp_rules = ""  # unknown state: rewrite on the next change
                    raise GatewayError(f"the egress gateway could not load its TCP rules: "
                                       f"{status.strip()[:200]}")
                return
            if time.monotonic() > deadline:
                self._tcp_rules = ""
                raise GatewayError(f"the egress gateway did not load its TCP rules within "
                                   f"{TCP_APPLY_TIMEOUT_S} s; see `docker logs "
                                   f"{self.container_name}`")
            await asyncio.sleep(0.01)

    def _write_maps(self) -> None:
        merged: dict[str, list[str]] = {name: [] for name in
                                        map_files(self.settings.egress_header_names)}
        for member in self._members.values():
            for name, entries in self._entries(*member).items():
                merged[name] += [f"{key} {value}\n" for key, value in entries.items()]
        for name, lines in merged.items():
            self._write(name, "".join(lines))

    async def _runtime(self, commands: list[str]) -> None:
        replies = await self._send(self.directory / "haproxy.sock", commands)
        for command, reply in zip(commands, replies, strict=False):
            # Success is silence; removing an entry that is already gone is harmless.
            if reply and not (command.startswith("del ") and "not found" in reply.lower()):
                raise GatewayError(f"the egress gateway refused {' '.join(command.split()[:3])}"
                                   f": {reply[:200]}")

    async def _send(self, socket_path: Path, commands: list[str]) -> list[str]:
        replies: list[str] = []
        # One command per connection: a reply ends when HAProxy closes it (non-interactive).
        for command in commands:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(str(socket_path)), SOCKET_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise GatewayError(f"the egress gateway's control socket is unreachable: "
                                   f"{exc}") from exc
            try:
                writer.write(command.encode() + b"\n")
                await writer.drain()
                reply = await asyncio.wait_for(reader.read(1 << 16), SOCKET_TIMEOUT_S)
                replies.append(reply.decode("utf-8", "replace").strip())
            except (OSError, TimeoutError) as exc:
                raise GatewayError(f"the egress gateway did not answer: {exc}") from exc
            finally:
                writer.close()
        return replies
