"""/docs and /redoc work without internet: the pages load Swagger UI and ReDoc from the server
itself, and reference no other host."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from sandbox_server.app import create_app
from sandbox_server.settings import Settings

# Any scheme-qualified or protocol-relative reference leaves the server.
EXTERNAL = re.compile(r"""(?:https?:)?//[^\s"'<>]+""")
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.fixture(scope="module")
def client() -> TestClient:
    # No `with`: the lifespan (and so Docker) is not needed to serve the docs.
    return TestClient(create_app(Settings(api_keys="k")))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_are_self_contained(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert EXTERNAL.findall(html) == []
    assets = REFERENCE.findall(html)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        loaded = client.get(asset)
        assert loaded.status_code == 200, asset
        assert len(loaded.content) > 1000, asset
    assert client.get("/openapi.json").json()["info"]["title"] == "selfbox"


def test_swagger_ui_asks_no_public_validator(client: TestClient) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text
