"""What a sandbox may have: requests checked against the server's defaults, maxima and caps.

I/O-free. Every refusal names the limit and the setting that governs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from executors.models import SandboxSpec

from .exceptions import InvalidRequest, LimitExceeded, TooManySandboxes
from .sandbox import Limits, Sandbox
from .settings import Settings

__all__ = [
    "NETWORKS",
    "SandboxSpec",
    "check_caps",
    "check_counts",
    "check_env_size",
    "resolve_execution_timeout",
    "resolve_request",
]

NETWORKS = ("none", "bridge", "egress")
MIN_MEMORY_MB = 32
# Docker's NanoCpus below 0.01 CPU is not a smaller quota but none at all (cfs_quota_us=-1),
# and just above it runc refuses the container: 0.01 is the least the engine enforces. The
# runner needs ~0.3 CPU-seconds to start, so below 0.05 a sandbox would not come up within
# SELFBOX_START_TIMEOUT_S (a 500 after 30 s): 0.05 is the least that works.
MIN_CPU = 0.05
MIN_PIDS = 16


def _pick(name: str, value: Any, default: Any, maximum: Any) -> Any:
    if value is None:
        return default
    if value <= 0:
        raise InvalidRequest(f"{name} must be positive, got {value}", limit=name)
    if value > maximum:
        raise LimitExceeded(
            f"{name}={value} exceeds the server maximum of {maximum} "
            f"(SELFBOX_MAX_{name.upper()})", limit=name, maximum=maximum,
        )
    return value


def resolve_request(s: Settings, request: SandboxSpec) -> tuple[str, Limits, float]:
    """The template, limits and lifetime a request gets, or a 4xx naming what is wrong."""
    limits = Limits(
        cpu=float(_pick("cpu", request.cpu, s.default_cpu, s.max_cpu)),
        memory_mb=int(_pick("memory_mb", request.memory_mb, s.default_memory_mb,
                            s.max_memory_mb)),
        pids=int(_pick("pids", request.pids, s.default_pids, s.max_pids)),
        disk_mb=int(_pick("disk_mb", request.disk_mb, s.default_disk_mb, s.max_disk_mb)),
        network=request.network or ("egress" if request.egress is not None else "none"),
    )
    if limits.cpu < MIN_CPU:
        raise InvalidRequest(f"cpu must be between {MIN_CPU} and {s.max_cpu} "
                             f"(SELFBOX_MAX_CPU), got {limits.cpu}", limit="cpu",
                             minimum=MIN_CPU, maximum=s.max_cpu)
    if limits.memory_mb < MIN_MEMORY_MB:
        raise InvalidRequest(f"memory_mb must be at least {MIN_MEMORY_MB}", limit="memory_mb")
    if limits.pids < MIN_PIDS:
        raise InvalidRequest(f"pids must be at least {MIN_PIDS} (threads count as pids)",
                             limit="pids")
    timeout_s = float(_pick("timeout_s", request.timeout_s, s.default_timeout_s,
                            s.max_timeout_s))
    if limits.network not in NETWORKS:
        raise InvalidRequest(f"network must be one of {NETWORKS}, got {limits.network!r}",
                             limit="network")
    if limits.network == "egress" or request.egress is not None:
        if limits.network != "egress":
            raise InvalidRequest(f"an egress policy needs network='egress' (or none given), "
                                 f"not {limits.network!r}", limit="network")
        if s.egress_mode == "none":
            raise LimitExceeded("egress policies are disabled on this server "
                                "(SELFBOX_EGRESS_MODE=none)", limit="egress")
    elif limits.network != "none" and not s.allow_network:
        raise LimitExceeded(f"network={limits.network!r} is disabled on this server "
                            "(SELFBOX_ALLOW_NETWORK)", limit="network")
    template = request.template or s.runtime_image
    if template not in s.templates():
        raise InvalidRequest(
            f"template {template!r} is not allowed; allowed: {sorted(s.templates())} "
            "(SELFBOX_ALLOWED_TEMPLATES)", limit="template",
        )
    if len(request.env) > s.max_env_vars:
        raise LimitExceeded(f"{len(request.env)} env vars exceed SELFBOX_MAX_ENV_VARS="
                            f"{s.max_env_vars}", limit="env")
    for key, value in request.env.items():
        if not key or "=" in key or "\x00" in key or "\x00" in value:
            raise InvalidRequest(f"invalid environment variable name {key!r}", limit="env")
    check_env_size(s, request.env)
    if len(request.metadata) > s.max_metadata_entries:
        raise LimitExceeded(f"{len(request.metadata)} metadata entries exceed "
                            f"SELFBOX_MAX_METADATA_ENTRIES={s.max_metadata_entries}",
                            limit="metadata")
    return template, limits, timeout_s


def env_bytes(env: dict[str, str]) -> int:
    """What an environment costs the kernel at exec: ``KEY=value\\0`` per variable."""
    return sum(len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
               + 2 for k, v in env.items())


def check_env_size(s: Settings, env: dict[str, str]) -> None:
    """Past the kernel's limits (128 KiB a string, a quarter of the stack in all) the container
    cannot even start ("argument list too long"): refuse before, naming the setting."""
    size = env_bytes(env)
    if size > s.max_env_bytes:
        raise LimitExceeded(f"the environment is {size} bytes, more than SELFBOX_MAX_ENV_BYTES="
                            f"{s.max_env_bytes} (KEY=value pairs, 0 to {s.max_env_bytes} "
                            "bytes)", limit="env", maximum=s.max_env_bytes)


def check_caps(s: Settings, sandboxes: Iterable[Sandbox], owner: str) -> None:
    """429 when one more live sandbox would pass the global or the per-key cap.

    The caller's own cap is checked first: only the caller can free it, so its answer says not
    to retry. The global cap frees as anyone's sandboxes end: retry after a while."""
    live = [sb for sb in sandboxes if sb.alive]
    check_counts(s, sum(1 for sb in live if sb.owner == owner), len(live))


def check_counts(s: Settings, mine: int, total: int) -> None:
    """:func:`check_caps` from counts (on Swarm, of the labelled services of every replica)."""
    if mine >= s.max_sandboxes_per_key:
        raise TooManySandboxes(
            f"this API key's cap of {s.max_sandboxes_per_key} live sandboxes is reached "
            "(SELFBOX_MAX_SANDBOXES_PER_KEY); kill one of yours first",
            cap="max_sandboxes_per_key")
    if total >= s.max_sandboxes:
        raise TooManySandboxes(
            f"the server's cap of {s.max_sandboxes} live sandboxes is reached "
            f"(SELFBOX_MAX_SANDBOXES); retry in {s.cap_retry_after_s} s", cap="max_sandboxes",
            retry_after_s=s.cap_retry_after_s)


def resolve_execution_timeout(s: Settings, timeout_s: float | None) -> float:
    if timeout_s is None:
        return s.default_execution_timeout_s
    if timeout_s <= 0:
        raise InvalidRequest("timeout_s must be positive", limit="timeout_s")
    if timeout_s > s.max_execution_timeout_s:
        raise LimitExceeded(
            f"timeout_s={timeout_s} exceeds the server maximum of "
            f"{s.max_execution_timeout_s} (SELFBOX_MAX_EXECUTION_TIMEOUT_S)",
            limit="timeout_s", maximum=s.max_execution_timeout_s)
    return timeout_s
