"""Ingress: HTTP to a server listening on a port inside a sandbox, like ``kubectl
port-forward`` — carried over the sandbox's runner channel, so the sandbox needs no network.

* :mod:`.tunnel` — one TCP connection inside the sandbox, flow-controlled, protocol enforced
* :mod:`.proxy` — one HTTP/1.1 exchange over a tunnel (parsed by h11)
* :mod:`.routes` — ``/v1/sandboxes/{id}/ports/{port}/...`` and E2B's ``{port}-{id}.{domain}``
"""

from __future__ import annotations

from .proxy import forward_http
from .routes import IngressHosts, match_host, router
from .tunnel import PortTunnel, PortUnreachable, TunnelBroken

__all__ = [
    "IngressHosts",
    "PortTunnel",
    "PortUnreachable",
    "TunnelBroken",
    "forward_http",
    "match_host",
    "router",
]
