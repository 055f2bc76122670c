"""The thin Docker layer: container calls through the ``docker`` SDK, nothing else.

Blocking by nature (the SDK is synchronous); the lifecycle manager calls it from a thread pool.
Docker's own errors are translated here, at the boundary, into the server's exceptions.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import docker
import docker.errors
import requests.exceptions

from .exceptions import Conflict, EngineUnavailable, NotFound, SandboxStartError
from .seccomp import profile_json

__all__ = ["SANDBOX_HOME", "SANDBOX_USER", "ContainerSpec", "DockerDriver"]

SANDBOX_USER = "1000:1000"
SANDBOX_HOME = "/home/user"
LABEL_PREFIX = "io.selfbox."

P = ParamSpec("P")
T = TypeVar("T")


def _translated(fn: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except docker.errors.NotFound as exc:
            raise NotFound(f"container not found: {exc.explanation}") from exc
        except docker.errors.ImageNotFound as exc:
            raise NotFound(f"image not found: {exc.explanation}") from exc
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # a name in use, a container in the wrong state
                raise Conflict(f"Docker engine: {exc.explanation or exc}") from exc
            raise SandboxStartError(f"Docker engine error: {exc.explanation or exc}") from exc
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise EngineUnavailable(f"the Docker engine cannot be reached: {exc}") from exc

    return wrapper


@dataclass(frozen=True)
class ContainerSpec:
    """Everything that makes one sandbox container, hardening included."""

    image: str
    labels: dict[str, str]
    cpu: float
    memory_mb: int
    pids: int
    disk_mb: int
    network: str = "none"
    env: dict[str, str] = field(default_factory=dict)
    runtime: str | None = None
    # Files bind-mounted read-only, host path -> container path (the egress resolv.conf).
    read_only_files: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ("python3", "-m", "selfbox_runner")

    def host_config(self, api: docker.APIClient) -> dict[str, Any]:
        # Docker mounts tmpfs noexec unless told otherwise. /tmp stays noexec; the home
        # directory (the working directory, as on E2B) may hold scripts users run. Code in the
        # sandbox can already run anything Python can, so exec there opens no new door.
        tmpfs_opts = "nosuid,nodev"
        result: dict[str, Any] = api.create_host_config(
            init=True,  # a real PID 1 reaps zombies and forwards signals
            read_only=True,
            cap_drop=["ALL"],
            # selfbox's own seccomp profile (Docker's default minus io_uring and the like; see
            # seccomp.py). gVisor filters in its own kernel and ignores an OCI profile.
            security_opt=["no-new-privileges:true", f"seccomp={profile_json()}"],
            # Nothing a sandbox prints is kept on the host: with the default json-file driver
            # every protocol line (all output, results, PNGs) went to the host's disk, uncapped.
            log_config=docker.types.LogConfig(type="none"),
            network_mode=self.network,
            mem_limit=f"{self.memory_mb}m",
            memswap_limit=f"{self.memory_mb}m",  # no swap beyond the memory limit
            nano_cpus=int(self.cpu * 1e9),
            pids_limit=self.pids,
            tmpfs={
                "/tmp": f"size={self.disk_mb}m,mode=1777,noexec,{tmpfs_opts}",
                SANDBOX_HOME: f"size={self.disk_mb}m,uid=1000,gid=1000,mode=0755,exec,"
                              f"{tmpfs_opts}",
            },
            shm_size=f"{min(self.disk_mb, 64)}m",
            ulimits=[docker.types.Ulimit(name="nofile", soft=4096, hard=4096)],
            ipc_mode="private",
            runtime=self.runtime,
            binds={src: {"bind": dst, "mode": "ro"} for src, dst in self.read_only_files}
            or None,
        )
        return result


class DockerDriver:
    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    @staticmethod
    @_translated
    def _connect() -> docker.DockerClient:
        return docker.from_env(timeout=60)

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    @_translated
    def ping(self) -> bool:
        return bool(self.api.ping())

    @_translated
    def image_exists(self, image: str) -> bool:
        try:
            self.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    @_translated
    def create(self, spec: ContainerSpec, name: str | None = None,
               stdin_once: bool = False) -> str:
        """``stdin_once`` closes the container's stdin when the first attach ends (the lease);
        sandboxes keep it open, so that a new server can attach again."""
        created = self.api.create_container(
            spec.image,
            command=list(spec.command),
            name=name,
            user=SANDBOX_USER,
            working_dir=SANDBOX_HOME,
            environment=spec.env,
            labels=spec.labels,
            stdin_open=True,  # the runner's protocol channel is the attached stdin/stdout
            # docker-py sets StdinOnce unless detach: a detached container keeps its stdin
            # open when the server's attach ends, so that a new server can attach again.
            detach=not stdin_once,
            tty=False,
            network_disabled=spec.network == "none",
            host_config=spec.host_config(self.api),
        )
        container_id: str = created["Id"]
        return container_id

    @_translated
    def attach(self, container_id: str) -> socket.socket:
        """A raw socket: writes go to the container's stdin, reads are Docker's multiplexed
        stdout/stderr frames. Attach before start so no early output is lost; an attach to a
        running container sees only what is written from then on."""
        wrapped = self.api.attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        raw = getattr(wrapped, "_sock", wrapped)
        if not isinstance(raw, socket.socket):
            raise SandboxStartError(f"unexpected attach socket type {type(raw).__name__}")
        return raw

    @_translated
    def start(self, container_id: str) -> None:
        self.api.start(container_id)

    @_translated
    def inspect(self, container_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.inspect_container(container_id)
        return result

    @_translated
    def remove(self, container_id: str) -> None:
        """Kill and remove; a container that is already gone is not an error."""
        try:
            self.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            # 409 with force=True: another removal of it is already in progress.
            if exc.status_code in (404, 409):
                return
            raise

    @_translated
    def rename(self, container_id: str, name: str) -> None:
        self.api.rename(container_id, name)

    @_translated
    def pause(self, container_id: str) -> None:
        try:
            self.api.pause(container_id)
        except docker.errors.APIError as exc:
            # The engine answered (an outage is a connection error): the cgroup would not
            # freeze (its processes forking or exiting) or the container is not running,
            # which is the sandbox's state, not a server fault.
            raise Conflict(f"the sandbox could not be paused: {exc.explanation or exc}; "
                           "try again, or kill it") from exc

    @_translated
    def unpause(self, container_id: str) -> None:
        try:
            self.api.unpause(container_id)
        except docker.errors.APIError as exc:
            raise Conflict(f"the sandbox could not be resumed: {exc.explanation or exc}"
                           ) from exc

    @_translated
    def list(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        result: list[dict[str, Any]] = self.api.containers(all=True, filters=filters)
        return result

    # -- the egress gateway's network and container ---------------------------------------
    @_translated
    def ensure_network(self, name: str, bridge: str, labels: dict[str, str]) -> str:
        """An internal bridge network (no route out, no traffic between its containers);
        returns the host's address on it (where the gateway serves)."""
        try:
            info = self.api.inspect_network(name)
        except docker.errors.NotFound:
            self.api.create_network(name, driver="bridge", internal=True, labels=labels,
                                    options={"com.docker.network.bridge.enable_icc": "false",
                                             "com.docker.network.bridge.name": bridge})
            info = self.api.inspect_network(name)
        configs = (info.get("IPAM") or {}).get("Config") or []
        gateway = next((c.get("Gateway") for c in configs if c.get("Gateway")), None)
        if not gateway:
            raise SandboxStartError(f"Docker network {name} has no gateway address")
        return str(gateway)

    @_translated
    def remove_network(self, name: str) -> None:
        try:
            self.api.remove_network(name)
        except docker.errors.NotFound:
            return

    @_translated
    def run_gateway(self, image: str, name: str, directory: str,
                    labels: dict[str, str]) -> str:
        """(Re)start the egress gateway: host network namespace (it serves on the bridge's
        address and installs the host rules that confine the sandboxes), root with only the
        capabilities it needs, its configuration directory mounted at the same path."""
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(name, force=True)
        host_config = self.api.create_host_config(
            network_mode="host", init=True, cap_drop=["ALL"],
            cap_add=["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE", "SETUID", "SETGID"],
            security_opt=["no-new-privileges:true"], read_only=True,
            binds={directory: {"bind": directory, "mode": "rw"}},
            restart_policy={"Name": "no"},
        )
        created = self.api.create_container(image, name=name, labels=labels,
                                            environment={"SELFBOX_EGRESS_DIR": directory},
                                            host_config=host_config)
        container_id: str = created["Id"]
        self.api.start(container_id)
        return container_id

    @_translated
    def stop(self, container_id: str, timeout_s: int) -> None:
        try:
            self.api.stop(container_id, timeout=timeout_s)
            self.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            return

    @_translated
    def mount_source(self, container: str, destination: str) -> str | None:
        """The host path behind ``destination`` in ``container`` (a named volume's data
        directory, a bind's source), or None if nothing is mounted there."""
        info = self.api.inspect_container(container)
        for mount in info.get("Mounts") or []:
            if mount.get("Destination") == destination and mount.get("Source"):
                return str(mount["Source"])
        return None

    @_translated
    def container_ip(self, container_id: str, network: str) -> str:
        info = self.api.inspect_container(container_id)
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        address = (networks.get(network) or {}).get("IPAddress")
        if not address:
            raise SandboxStartError(f"container {container_id[:12]} has no address on {network}")
        return str(address)

    @_translated
    def stats(self, container_id: str) -> dict[str, Any]:
        try:
            result: dict[str, Any] = self.api.stats(container_id, stream=False)
        except (ValueError, docker.errors.APIError) as exc:
            # An empty or cut body, or a refusal: the container is stopping or gone.
            raise Conflict(f"container {container_id[:12]} has no stats now: it is not "
                           "running") from exc
        return result


def label(name: str) -> str:
    return LABEL_PREFIX + name
