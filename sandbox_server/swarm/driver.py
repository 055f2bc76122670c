"""The Swarm back end of the Docker boundary: a sandbox is a one-task service ``selfbox-<id>``.

The same calls as :class:`~sandbox_server.driver.DockerDriver`, so the manager, the channel,
the gateway and the runs are the single-node ones. A sandbox's handle (``container_id`` on the
manager's side) is its service name. Every engine call goes through a socket proxy
(images/socket-proxy/haproxy-swarm.cfg): Swarm calls (services, tasks, nodes) through a
manager node's proxy, the channel (attach) and stats through the proxy *on the node that runs
the task*, found among the proxy service's tasks on the internal overlay. No raw socket of
another node and no open engine port is ever used.

Swarm starts the task itself, before anyone attaches: the runner's relay waits for the
server's first line (``--wait-for-server``) before the runner says hello.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import docker
import docker.errors
import requests.exceptions

from ..driver import SANDBOX_HOME, SANDBOX_USER, ContainerSpec, _translated, label
from ..exceptions import (
    Conflict,
    EngineUnavailable,
    SandboxStartError,
    TooManySandboxes,
)
from ..pool import POOL_OWNER
from ..records import POOL_NAME_PREFIX
from ..settings import Settings

__all__ = ["SANDBOX_CONSTRAINT", "SwarmDriver", "service_body"]

API_VERSION = "1.41"
SANDBOX_ID = label("sandbox-id")
OWNER = label("owner")
MiB = 1024 * 1024
SANDBOX_CONSTRAINT = "node.labels.io.selfbox.sandbox==true"
# Task states before "running" (Swarm's own order); anything after it is an end.
STARTING = frozenset({"new", "allocated", "pending", "assigned", "accepted", "preparing",
                      "ready", "starting"})
ATTACH_WAIT_S = 60.0  # bounded; the manager's start timeout cuts it shorter
POLL_S = 0.1


def service_body(spec: ContainerSpec, name: str) -> dict[str, Any]:
    """The service spec of a sandbox: the single-node hardening, as far as a Swarm service on
    API 1.41 can say it (docs/scale-out.md, "Hardening"); the rest is the sandbox nodes'
    daemon configuration, and the placement constraint keeps sandboxes on those nodes.
    Raw API fields: docker-py 7 has no ``Ulimits`` or ``Limits.Pids``."""
    tmpfs = {"SizeBytes": spec.disk_mb * MiB, "Mode": 0o1777}
    memory = spec.memory_mb * MiB
    cpus = int(spec.cpu * 1e9)
    return {
        "Name": name,
        "Labels": dict(spec.labels),  # the state: any API replica reads it
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": spec.image,
                "Command": list(spec.command),
                "User": SANDBOX_USER,
                # Not the home: a working directory is created in the image's root before
                # the mounts, and a tmpfs over an existing directory ignores its Mode (it
                # would be root's 0755). The runner works in $HOME all the same.
                "Dir": "/",
                "Env": [f"{k}={v}" for k, v in spec.env.items()],
                "Labels": dict(spec.labels),
                "ReadOnly": True,
                "CapabilityDrop": ["ALL"],
                "Init": True,
                "OpenStdin": True,  # the runner's channel, as on one node
                "TTY": False,
                "StopGracePeriod": 1_000_000_000,
                "Ulimits": [{"Name": "nofile", "Soft": 4096, "Hard": 4096}],
                "Mounts": [
                    {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": tmpfs},
                    {"Type": "tmpfs", "Target": SANDBOX_HOME, "TmpfsOptions": tmpfs},
                ],
            },
            # Limits cap the container; reservations are what Swarm's scheduler places by.
            "Resources": {
                "Limits": {"NanoCPUs": cpus, "MemoryBytes": memory, "Pids": spec.pids},
                "Reservations": {"NanoCPUs": cpus, "MemoryBytes": memory},
            },
            # A sandbox that dies is dead: never re-created empty somewhere else.
            "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
            "Placement": {"Constraints": [SANDBOX_CONSTRAINT]},
        },
        "Mode": {"Replicated": {"Replicas": 1}},
    }


def _client(address: str) -> docker.APIClient:
    # Short: an address whose proxy task is gone does not answer at all (the caller then
    # looks the proxy up again); the attach's stream has no timeout of its own afterwards.
    return docker.APIClient(base_url=f"tcp://{address}", version=API_VERSION, timeout=10)


def _latest(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not tasks:
        return None
    return max(tasks, key=lambda t: (t.get("CreatedAt", ""), (t.get("Version") or {}).get(
        "Index", 0)))


class SwarmDriver:
    """Sandboxes as Swarm services; thread-safe (the manager calls it from a thread pool)."""

    def __init__(self, settings: Settings) -> None:
        host, _, port = settings.swarm_proxies.rpartition(":")
        self._proxy_host, self._proxy_port = host or settings.swarm_proxies, port or "2375"
        self._proxy_service = settings.swarm_proxy_service
        self._network = settings.swarm_proxy_network
        self._manager: docker.APIClient | None = None
        self._nodes: dict[str, docker.APIClient] = {}  # node id -> its proxy
        self._lock = threading.Lock()

    # -- the proxies -----------------------------------------------------------------------
    def _find_manager(self) -> docker.APIClient:
        """A manager node's proxy: of all the proxies, one that answers a Swarm call (a
        worker's answers 503 "not a swarm manager")."""
        try:
            infos = socket.getaddrinfo(self._proxy_host, int(self._proxy_port),
                                       type=socket.SOCK_STREAM)
        except OSError as exc:
            raise EngineUnavailable(f"no socket proxy at {self._proxy_host} "
                                    f"(SELFBOX_SWARM_PROXIES): {exc}") from exc
        problems = []
        for address in sorted({str(info[4][0]) for info in infos}):
            api = _client(f"{address}:{self._proxy_port}")
            try:
                api.nodes(filters={"role": "manager"})
                return api
            except (docker.errors.DockerException, OSError) as exc:
                problems.append(f"{address}: {exc}")
        raise EngineUnavailable("no Swarm manager among the socket proxies "
                                f"(SELFBOX_SWARM_PROXIES={self._proxy_host}): "
                                + "; ".join(problems))

    @property
    def manager(self) -> docker.APIClient:
        with self._lock:
            if self._manager is None:
                self._manager = self._find_manager()
            return self._manager

    def _swarm(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A Swarm call; a manager proxy that went away is looked up again once."""
        try:
            return fn(self.manager, *args, **kwargs)
        except (docker.errors.DockerException, OSError) as exc:
            if isinstance(exc, docker.errors.APIError) and exc.status_code not in (502, 503):
                raise
            with self._lock:
                self._manager = None
            return fn(self.manager, *args, **kwargs)

    def _node_proxy(self, node_id: str) -> docker.APIClient:
        with self._lock:
            cached = self._nodes.get(node_id)
        if cached is not None:
            return cached
        tasks = self._swarm(lambda api: api.tasks(filters={
            "service": self._proxy_service, "node": node_id, "desired-state": "running"}))
        for task in tasks:
            if (task.get("Status") or {}).get("State") != "running":
                continue
            for attachment in task.get("NetworksAttachments") or []:
                network = ((attachment.get("Network") or {}).get("Spec") or {}).get("Name", "")
                if network.endswith(self._network) and attachment.get("Addresses"):
                    address = str(attachment["Addresses"][0]).split("/")[0]
                    api = _client(f"{address}:{self._proxy_port}")
                    with self._lock:
                        self._nodes[node_id] = api
                    return api
        raise EngineUnavailable(f"node {self._node_name(node_id)} has no running socket proxy "
                                f"({self._proxy_service} on {self._network})")

    def _on_node(self, node_id: str, fn: Any) -> Any:
        """A call through a node's proxy; a proxy that moved (its task replaced after a drain
        or a restart: a new address) is looked up again once."""
        try:
            return fn(self._node_proxy(node_id))
        except (requests.exceptions.ConnectionError, OSError):
            with self._lock:
                self._nodes.pop(node_id, None)
            return fn(self._node_proxy(node_id))

    def _node_name(self, node_id: str) -> str:
        try:
            node = self._swarm(lambda api: api.inspect_node(node_id))
        except (docker.errors.DockerException, OSError):
            return node_id[:12]
        return str((node.get("Description") or {}).get("Hostname") or node_id[:12])

    # -- the boundary's calls --------------------------------------------------------------
    @_translated
    def ping(self) -> bool:
        return bool(self._swarm(lambda api: api.ping()))

    def image_exists(self, image: str) -> bool:
        # Images live on the nodes (the proxy has no image calls): a missing one fails the
        # task, and that error is what the create answers.
        return True

    @_translated
    def create(self, spec: ContainerSpec, name: str | None = None,
               stdin_once: bool = False) -> str:
        if name is None:
            raise SandboxStartError("a sandbox service needs a name")
        body = service_body(spec, name)

        def post(api: docker.APIClient) -> Any:
            return api._result(api._post_json(api._url("/services/create"), data=body),
                               json=True)
        self._swarm(post)
        return name

    def _task(self, name: str) -> dict[str, Any] | None:
        return _latest(self._swarm(lambda api: api.tasks(filters={"service": name})))

    @_translated
    def attach(self, container_id: str) -> socket.socket:
        """Wait for the service's task to run, then attach through its node's proxy."""
        deadline = time.monotonic() + ATTACH_WAIT_S
        while True:
            task = self._task(container_id)
            status = (task or {}).get("Status") or {}
            state = status.get("State", "new")
            if state == "running" and task is not None:
                break
            self._raise_if_ended(container_id, task, status)
            if time.monotonic() > deadline:
                raise SandboxStartError(f"{container_id} did not start within "
                                        f"{ATTACH_WAIT_S:g} s (task {state})")
            time.sleep(POLL_S)
        node_id = str(task["NodeID"])
        container = str((status.get("ContainerStatus") or {}).get("ContainerID", ""))
        wrapped = self._on_node(node_id, lambda api: api.attach_socket(
            container, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}))
        raw = getattr(wrapped, "_sock", wrapped)
        if not isinstance(raw, socket.socket):
            raise SandboxStartError(f"unexpected attach socket type {type(raw).__name__}")
        return raw

    def _raise_if_ended(self, name: str, task: dict[str, Any] | None,
                        status: dict[str, Any]) -> None:
        state = status.get("State", "new")
        error = str(status.get("Err") or "")
        if "no suitable node" in error:
            # Swarm's scheduler found no node for the reservations: the cluster is full.
            resources = (((task or {}).get("Spec") or {}).get("Resources") or {}).get(
                "Reservations") or {}
            memory_mb = int(resources.get("MemoryBytes", 0)) // MiB
            cpu = int(resources.get("NanoCPUs", 0)) / 1e9
            with_ctx = ("memory and CPU" if "insufficient resources" in error
                        else "placement constraints")
            raise TooManySandboxes(
                f"the cluster has no room for this sandbox ({with_ctx}: memory_mb={memory_mb}, "
                f"cpu={cpu:g} reserved per sandbox); Swarm says: {error}",
                cap="cluster_capacity", retry_after_s=10, resource="memory,cpu")
        if state not in STARTING and state != "running":
            raise SandboxStartError(f"the sandbox's task is {state}: {error or status}")

    @_translated
    def start(self, container_id: str) -> None:
        """Nothing to do: Swarm started the task; the server's first line starts the runner."""

    @_translated
    def inspect(self, container_id: str) -> dict[str, Any]:
        """A container-like answer from the service's task and its node: ``State.Running``,
        ``ExitCode``, and ``Reason`` naming the node when the node is the cause."""
        try:
            task = self._task(container_id)
        except docker.errors.NotFound:
            task = None
        if task is None:
            raise docker.errors.NotFound(f"service {container_id} not found")
        return {"State": self._state(task, self._nodes_by_id())}

    def _nodes_by_id(self) -> dict[str, dict[str, Any]]:
        return {str(n["ID"]): n for n in self._swarm(lambda api: api.nodes())}

    @staticmethod
    def _state(task: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
        status = task.get("Status") or {}
        state = status.get("State", "new")
        node = nodes.get(str(task.get("NodeID", "")), {})
        hostname = (node.get("Description") or {}).get("Hostname", "?")
        node_state = (node.get("Status") or {}).get("State", "unknown")
        availability = (node.get("Spec") or {}).get("Availability", "active")
        exit_code = (status.get("ContainerStatus") or {}).get("ExitCode")
        reason = None
        if task.get("NodeID") and node_state != "ready":
            reason = f"its node {hostname} is {node_state}"
        elif availability == "drain" and task.get("DesiredState") != "running":
            reason = f"its node {hostname} was drained"
        elif state not in STARTING and state != "running":
            reason = f"its task on node {hostname} is {state}" + (
                f" ({status['Err']})" if status.get("Err") else "")
        running = state == "running" and task.get("DesiredState") == "running" and not reason
        return {"Running": running, "Status": state, "ExitCode": exit_code, "OOMKilled": False,
                "Reason": reason, "Node": hostname,
                "Starting": state in STARTING and not reason}

    @_translated
    def remove(self, container_id: str) -> None:
        try:
            self._swarm(lambda api: api.remove_service(container_id))
        except docker.errors.NotFound:
            return

    @_translated
    def list(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """The labelled sandbox services, container-like (``Id`` is the service name)."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        services = self._swarm(lambda api: api.services(filters=filters))
        if not services:
            return []
        names = [str(s["Spec"]["Name"]) for s in services]
        tasks = self._swarm(lambda api: api.tasks(filters={"service": names}))
        nodes = self._nodes_by_id()
        by_service: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            by_service.setdefault(str(task.get("ServiceID")), []).append(task)
        result = []
        for service in services:
            name = str(service["Spec"]["Name"])
            task = _latest(by_service.get(str(service["ID"]), []))
            state = self._state(task, nodes) if task else {"Running": False, "Starting": True,
                                                           "Reason": None}
            labels = service["Spec"].get("Labels") or {}
            # The name adoption believes a record by (records.py): a pooled sandbox's until its
            # owner label is set at claim (a service cannot be renamed).
            shown = (f"{POOL_NAME_PREFIX}{labels.get(SANDBOX_ID, '')}"
                     if labels.get(OWNER) == POOL_OWNER else
                     f"selfbox-{labels.get(SANDBOX_ID, '')}")
            result.append({
                "Id": name, "Names": [f"/{shown}"],
                "Labels": service["Spec"].get("Labels") or {},
                "State": ("running" if state["Running"] else
                          "starting" if state.get("Starting") else "exited"),
                "Reason": state.get("Reason"),
                "Created": _epoch(service.get("CreatedAt", "")),
            })
        return result

    @_translated
    def set_labels(self, container_id: str, labels: dict[str, str]) -> None:
        """Update service labels (owner, expiry): Swarm keeps the task (no TaskTemplate
        change), so the sandbox and its state stay."""
        for _ in range(5):  # bounded: another replica's update bumps the version
            service = self._swarm(lambda api: api.inspect_service(container_id))
            spec = service["Spec"]
            spec["Labels"] = {**(spec.get("Labels") or {}), **labels}
            version = service["Version"]["Index"]
            try:
                self._swarm(_update, container_id, spec, version)
                return
            except docker.errors.APIError as exc:
                if "update out of sequence" not in str(exc):
                    raise
        raise Conflict(f"could not update the labels of {container_id}")

    def rename(self, container_id: str, name: str) -> None:
        raise Conflict("the Swarm back end has no warm pool (a service cannot be renamed)")

    def pause(self, container_id: str) -> None:
        raise Conflict("pause is not available on the Swarm back end")

    def unpause(self, container_id: str) -> None:
        raise Conflict("resume is not available on the Swarm back end")

    @_translated
    def stats(self, container_id: str) -> dict[str, Any]:
        task = self._task(container_id)
        status = (task or {}).get("Status") or {}
        container = (status.get("ContainerStatus") or {}).get("ContainerID")
        if task is None or not container:
            raise Conflict(f"{container_id} has no stats now: it is not running")
        try:
            result: dict[str, Any] = self._on_node(
                str(task["NodeID"]), lambda api: api.stats(container, stream=False))
        except (ValueError, docker.errors.APIError) as exc:
            raise Conflict(f"{container_id} has no stats now: it is not running") from exc
        return result


def _update(api: docker.APIClient, name: str, spec: dict[str, Any], version: int) -> Any:
    return api._result(api._post_json(api._url("/services/{0}/update", name), data=spec,
                                      params={"version": version}), json=True)


def _epoch(stamp: str) -> float:
    """Swarm's RFC 3339 time (nanoseconds) as a Unix time; 0 when unreadable."""
    from datetime import datetime
    try:
        return datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0
