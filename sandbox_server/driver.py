"""The thin Docker layer: container calls through the ``docker`` SDK, nothing else.

Blocking by nature (the SDK is synchronous); the lifecycle manager calls it from a thread pool.
Docker's own errors are translated here, at the boundary, into the server's exceptions.
"""

from __future__ import annotations

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
    def create(self, spec: ContainerSpec, name: str | None = None) -> str:
        created = self.api.create_container(
            spec.image,
            command=list(spec.command),
            name=name,
            user=SANDBOX_USER,
            working_dir=SANDBOX_HOME,
            environment=spec.env,
            labels=spec.labels,
            stdin_open=True,  # the runner's protocol channel is the attached stdin/stdout
            tty=False,
            network_disabled=spec.network == "none",
            host_config=spec.host_config(self.api),
        )
        container_id: str = created["Id"]
        return container_id

    @_translated
    def attach(self, container_id: str) -> socket.socket:
        """A raw socket: writes go to the container's stdin, reads are Docker's multiplexed
        stdout/stderr frames. Attach before start so no early output is lost."""
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
