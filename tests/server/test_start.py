"""Starting a sandbox container: the errors a create can meet (real Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.docker


def test_an_allowed_template_that_is_not_built_is_a_clear_error(tmp_path: Path) -> None:
    # The image is looked up only when the container create fails: the error stays the same.
    from tests.conftest import start_server, stop_server

    missing = "selfbox/not-built-perf15:none"
    server = start_server(tmp_path, SELFBOX_ALLOWED_TEMPLATES=missing,
                          SELFBOX_WARM_POOL_SIZE="0")
    try:
        with server.client() as client:
            reply = client.post("/v1/sandboxes", json={"template": missing})
            assert reply.status_code == 422, reply.text
            assert "is not built on this host" in reply.json()["message"]
            assert client.get("/v1/sandboxes").json() == []
    finally:
        stop_server(server)
