"""The Swarm back end: sandboxes as Swarm services, state in their labels (docs/scale-out.md)."""

from .driver import SANDBOX_CONSTRAINT, SwarmDriver, service_body
from .sync import ClusterSync

__all__ = ["SANDBOX_CONSTRAINT", "ClusterSync", "SwarmDriver", "service_body"]
