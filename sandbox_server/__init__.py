"""selfbox's sandbox server: hardened, throwaway Docker sandboxes with stateful Python.

    from sandbox_server import Settings, create_app
    app = create_app(Settings(api_keys=["secret"]))

Importing this package pulls in FastAPI and the Docker SDK (the ``server`` extra).
"""

from .app import create_app
from .limits import SandboxSpec
from .manager import SandboxManager
from .settings import Settings

__all__ = ["SandboxManager", "SandboxSpec", "Settings", "create_app"]
