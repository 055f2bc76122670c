"""Server configuration: ``SELFBOX_*`` environment variables (or a ``.env`` file).

Every quantity carries its unit in its name. Each sandbox limit has a default (what a create
request gets when it does not ask) and a maximum (what it may ask for at most).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]

EXAMPLE_KEY = "change-me"  # the placeholder in .env.example, refused as a real key


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SELFBOX_", env_file=".env", extra="ignore")

    # -- serving --------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address to bind; loopback by default.")
    port: int = Field(8000, ge=0, le=65535)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted API keys (comma-separated in the environment). Each key owns the "
        "sandboxes it creates. No key configured means every request is refused.",
    )
    max_request_body_bytes: int = Field(16 * 1024 * 1024, gt=0)

    # -- docker ---------------------------------------------------------------------------
    runtime_image: str = Field("selfbox/runtime:latest", description="Default sandbox image.")
    allowed_templates: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Images a create request may name as template (the runtime image always).",
    )
    deployment: str = Field(
        "selfbox", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$",
        description="Name of the deployment, one server at a time (a lease container "
        "selfbox-lease-<deployment> enforces it): at start a server takes over the live "
        "sandboxes of its deployment and removes the rest. Two servers on one Docker engine "
        "need different names.",
    )
    docker_runtime: str | None = Field(None, description='OCI runtime, e.g. "runsc" (gVisor).')
    backend: Literal["docker", "swarm"] = Field(
        "docker", description="Where sandboxes run: containers on one Docker engine, or "
        "one-task services on a Docker Swarm (docs/scale-out.md), reached through the socket "
        "proxies in SELFBOX_SWARM_PROXIES; several API replicas may then share a deployment.",
    )
    swarm_proxies: str = Field(
        "tasks.socket-proxy:2375", description="host:port whose name resolves to every "
        "node's socket proxy (Swarm back end); Swarm calls go to one on a manager node.",
    )
    swarm_proxy_service: str = Field(
        "selfbox_socket-proxy", description="The proxies' Swarm service: its task on a node "
        "is how the channel reaches a sandbox there.",
    )
    swarm_proxy_network: str = Field(
        "docker-api", description="The overlay network the proxies serve on (the stack's "
        "name prefix aside).",
    )
    swarm_sync_s: float = Field(
        3.0, gt=0, description="How often an API replica reads the sandbox services from "
        "Swarm: it adopts those it does not hold and ends those whose node or task failed.",
    )
    allow_network: bool = Field(
        False, description='Whether sandboxes may ask for network="bridge".')

    # -- egress: per-sandbox network policy (docs/network.md) ------------------------------
    egress_mode: Literal["none", "allow-list", "open"] = Field(
        "none", description="Egress policies: none (refused; sandboxes have no network), "
        "allow-list (only SELFBOX_EGRESS_OPERATOR_ALLOW, narrowed by each sandbox's policy) or "
        "open (the public internet, narrowed by each sandbox's policy). The hard deny list "
        "applies in every mode.")
    egress_operator_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="allow-list mode: the domains (exact or *.), IPs "
        "and CIDRs sandboxes may reach at most.")
    egress_extra_deny: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="IPs/CIDRs added to the hard deny list (e.g. the "
        "server's public address); private, local and reserved ranges are always in it.")
    egress_private_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Private CIDRs carved out of the hard deny list "
        "(e.g. an internal package mirror).")
    egress_upstream_dns: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="ip[:port] of the DNS servers the egress gateway "
        "resolves allowed names with; empty: the gateway container's own resolver.")
    egress_header_names: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["Authorization", "X-Api-Key", "Api-Key", "X-Auth-Token",
                                 "Cookie", "OpenAI-Organization", "OpenAI-Project"],
        description="Headers a sandbox's `rules` may have the gateway set on plain-HTTP "
        "requests (fixed when the gateway starts; values change live).")
    egress_config_dir: str = Field(
        "/run/selfbox-egress", description="Where the server writes the egress gateway's "
        "configuration (one directory per deployment); the gateway container mounts it at the "
        "same path, so it must be a host path (compose: a named volume, whose host path the "
        "server reads from its own container).")
    egress_gateway: Literal["managed", "external"] = Field(
        "managed", description="managed: the server starts the egress gateway container "
        "itself (host network, NET_ADMIN); external: the deployment runs it (the compose "
        "service `egress-gateway`) and the server only writes its configuration into "
        "SELFBOX_EGRESS_CONFIG_DIR and waits for it.")
    egress_gateway_image: str = Field(
        "selfbox/egress-gateway:latest", description="Image of the egress gateway "
        "(HAProxy + dnsmasq from Debian; `selfbox images build egress-gateway`).")

    # -- ingress: HTTP to a port inside a sandbox ------------------------------------------
    ingress_enabled: bool = Field(
        True, description="Serve /v1/sandboxes/{id}/ports/{port}/... and E2B's "
        "{port}-{id}.{domain} hosts: HTTP to a server listening inside a sandbox, carried "
        "over its channel (the sandbox needs no network).")
    ingress_idle_timeout_s: float = Field(
        60.0, gt=0, description="How long a server in a sandbox may stay silent while "
        "answering an ingress request before the request fails with 502.")
    max_ingress_connections_per_sandbox: int = Field(
        32, gt=0, le=64, description="Ingress requests in flight to one sandbox; more get 429.")
    e2b_sandbox_domain: str | None = Field(
        None, description="Domain of E2B sandbox hosts ({port}-{id}.{domain}), returned as "
        "`domain` on create so the SDK's get_host() uses it; unset: the SDK's E2B_DOMAIN "
        "and any domain is accepted in the Host header.")

    # -- limits: defaults and maxima ------------------------------------------------------
    default_cpu: float = Field(1.0, gt=0)
    max_cpu: float = Field(2.0, gt=0)
    default_memory_mb: int = Field(512, gt=0)
    max_memory_mb: int = Field(4096, gt=0)
    default_pids: int = Field(256, gt=0)
    max_pids: int = Field(4096, gt=0)
    default_disk_mb: int = Field(256, gt=0)
    max_disk_mb: int = Field(4096, gt=0)
    default_timeout_s: float = Field(300.0, gt=0, description="Default sandbox lifetime.")
    max_timeout_s: float = Field(24 * 3600.0, gt=0)
    default_execution_timeout_s: float = Field(60.0, gt=0)
    max_execution_timeout_s: float = Field(3600.0, gt=0)
    interrupt_grace_s: float = Field(
        3.0, gt=0, description="How long interrupted code may take to stop before the sandbox "
        "is killed.",
    )
    output_limit_bytes: int = Field(1024 * 1024, gt=0, description="Cap on stdout+stderr per "
                                    "execution; more is dropped and the result marked truncated.")
    result_limit_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="Cap on the results of one execution (display "
        "bundles, the last value, figures, the final answer) together; past it results are "
        "dropped and the execution marked output_truncated.")
    max_code_bytes: int = Field(1024 * 1024, gt=0)
    max_env_vars: int = Field(256, ge=0)
    max_env_bytes: int = Field(
        64 * 1024, ge=0, le=1024 * 1024,
        description="Total size of the environment variables a create request may set "
        "(KEY=value pairs); the kernel refuses to start a process with much more.")
    max_metadata_entries: int = Field(64, ge=0)

    # -- what a sandbox may send the server (per sandbox) ---------------------------------
    runner_max_message_bytes: int = Field(
        8 * 1024 * 1024, ge=64 * 1024, description="Largest protocol line a sandbox may send "
        "(a result bundle, a file chunk); a longer one is dropped as it arrives, unbuffered.")
    runner_read_bytes_per_s: float = Field(
        16 * 1024 * 1024, gt=0, description="Bytes a second the server reads from one "
        "sandbox's channel (each line counts as at least 16 KiB); past it the server reads "
        "more slowly and the sandbox's writes block, so a flood slows only that sandbox.")
    runner_log_frames_per_s: float = Field(
        10.0, ge=0, description="Log lines a second one sandbox may put into the server's log "
        "(bursts of 100); the rest are counted and dropped.")
    runner_reply_timeout_s: float = Field(
        15.0, gt=0, description="How long the server waits for a sandbox to answer a request "
        "that is not an execution (variables, files, contexts) before answering 409 "
        "sandbox_unresponsive.")

    # -- caps and lifecycle ---------------------------------------------------------------
    max_sandboxes: int = Field(100, gt=0, description="Live sandboxes, all keys together.")
    max_sandboxes_per_key: int = Field(20, gt=0)
    cap_retry_after_s: int = Field(
        5, ge=1, le=3600, description="Retry-After of a 429 for the server-wide cap "
        "(SELFBOX_MAX_SANDBOXES); the per-key cap answers Should-Retry: false instead.",
    )
    idempotency_window_s: float = Field(
        600.0, gt=0, description="How long a create request's Idempotency-Key is remembered "
        "(per API key): a repeat gets the same sandbox.",
    )
    start_timeout_s: float = Field(30.0, gt=0)
    warm_pool_size: int = Field(
        2, ge=0, le=64, description="Sandboxes kept started with the default template and "
        "limits, so that plain create requests are served at once (0 turns the pool off).",
    )
    warm_pool_max_size: int = Field(
        64, ge=0, le=1024, description="Most sandboxes the warm pool keeps when creates come "
        "in bursts: it keeps as many as the largest recent burst, up to this.",
    )
    warm_pool_idle_s: float = Field(
        300.0, gt=0, description="Seconds without a create after which the warm pool shrinks "
        "back to SELFBOX_WARM_POOL_SIZE.",
    )
    reaper_interval_s: float = Field(1.0, gt=0)
    orphan_grace_s: float = Field(
        60.0, ge=5, le=86400, description="A sandbox that hears nothing from its server for "
        "this long stops by itself (a watchdog process beside the runner); a restarted server "
        "must be back within it to take its sandboxes over.",
    )
    state_secret: SecretStr | None = Field(
        None, description="Signs the state each sandbox keeps for a restarted server, and "
        "derives E2B access tokens. Unset: read from (or created in) SELFBOX_STATE_SECRET_FILE.",
    )
    state_secret_file: str = Field(
        "~/.local/state/selfbox/state-secret", description="Where the state secret is kept "
        "when SELFBOX_STATE_SECRET is unset (created at first start, mode 0600); empty: a new "
        "secret per process, so sandboxes do not survive a restart.",
    )
    shutdown_keeps_sandboxes: bool = Field(
        True, description="On SIGTERM, leave the sandboxes running for the next server (which "
        "must start within SELFBOX_ORPHAN_GRACE_S); false: kill them all.",
    )
    shutdown_timeout_s: float = Field(10.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text", description='Log lines as plain text or as one JSON object per line ("json", '
        "the server image's default)."
    )
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")

    @field_validator("api_keys", "allowed_templates", "egress_operator_allow",
                     "egress_extra_deny", "egress_private_allow", "egress_upstream_dns",
                     "egress_header_names",
                     mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _no_example_key(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(key.get_secret_value() == EXAMPLE_KEY for key in keys):
            raise ValueError(f"SELFBOX_API_KEYS still holds the example key {EXAMPLE_KEY!r} from "
                             ".env.example: set a real key (python3 -c \"import secrets; "
                             "print(secrets.token_urlsafe(32))\")")
        return keys

    def templates(self) -> set[str]:
        return {self.runtime_image, *self.allowed_templates}
