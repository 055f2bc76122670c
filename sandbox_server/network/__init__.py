"""Per-sandbox network policy: egress by domain and CIDR, enforced outside the sandbox.

* :mod:`.policy` — the model (I/O-free): the sandbox's policy with E2B's semantics, the
  operator's policy and hard deny list, :func:`~.policy.decide`
* :mod:`.resolve` — settings and request bodies to policies
* :mod:`.gateway` — the deployment's egress gateway (HAProxy + dnsmasq in a container on an
  internal Docker network), programmed live through HAProxy's runtime API
"""

from __future__ import annotations

from .policy import (
    ALL_TRAFFIC,
    HARD_DENY,
    Destinations,
    EgressMode,
    EgressPolicy,
    OperatorPolicy,
    PolicyError,
    Verdict,
    decide,
)
from .resolve import operator_policy, resolve_egress

__all__ = [
    "ALL_TRAFFIC",
    "HARD_DENY",
    "Destinations",
    "EgressMode",
    "EgressPolicy",
    "OperatorPolicy",
    "PolicyError",
    "Verdict",
    "decide",
    "operator_policy",
    "resolve_egress",
]
