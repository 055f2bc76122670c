"""From settings and requests to policies (no I/O): what the manager and the routers call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..exceptions import LimitExceeded
from ..settings import Settings
from .policy import EgressPolicy, OperatorPolicy, PolicyError

__all__ = ["operator_policy", "resolve_egress"]


def operator_policy(settings: Settings) -> OperatorPolicy:
    return OperatorPolicy.build(settings.egress_mode, settings.egress_operator_allow,
                                settings.egress_extra_deny, settings.egress_private_allow)


def resolve_egress(settings: Settings, network: str | None,
                   raw: Mapping[str, Any] | None, where: str = "egress") -> EgressPolicy | None:
    """The policy of a sandbox being created: None without egress (network none/bridge)."""
    if raw is None and network != "egress":
        return None
    if settings.egress_mode == "none":
        raise LimitExceeded("egress policies are disabled on this server "
                            "(SELFBOX_EGRESS_MODE=none)", limit="egress")
    raw = dict(raw or {})
    allow_internet = raw.pop("allow_internet_access", None)
    policy = EgressPolicy.parse(raw, where=where,
                                allow_internet_access=allow_internet
                                if isinstance(allow_internet, bool) else None)
    allowed = {name.lower() for name in settings.egress_header_names}
    for rule in policy.rules:
        for name, _ in rule.headers:
            if name.lower() not in allowed:
                raise PolicyError(
                    f"{where}.rules[{rule.pattern!r}]: header {name!r} is not one the gateway "
                    f"may set; allowed: {sorted(settings.egress_header_names)} "
                    "(SELFBOX_EGRESS_HEADER_NAMES)", field=f"{where}.rules")
    return policy
