"""The API docs pages in a real browser (Debian's Chromium, driven by Playwright): Swagger UI
and ReDoc render every operation from assets this server serves, with no request elsewhere
(a cluster without internet access has no CDN)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route

from benchmarks.ui_driver import chromium_missing, chromium_page
from tests.api.conftest import Server

MISSING = chromium_missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no browser: {MISSING}")
# Chromium's first start on a loaded 2-core machine takes tens of seconds
WAIT_S = 180.0


def _operations(doc: dict[str, object]) -> set[tuple[str, str]]:
    paths = doc["paths"]
    assert isinstance(paths, dict)
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _offline(page: Page, origin: str) -> list[str]:
    """Let the page reach only ``origin``, as on a cluster without internet access (here and
    on a machine with it alike); returns the URLs it needed from elsewhere, refused. Images
    are refused without being listed: ReDoc's sidebar badge shows its vendor's logo from the
    vendor's site, decoration that is simply missing offline."""
    refused: list[str] = []

    def route(r: Route) -> None:
        if _origin(r.request.url) == origin:
            r.continue_()
            return
        if r.request.resource_type != "image":
            refused.append(r.request.url)
        r.abort()

    page.route("**/*", route)
    return refused


def test_swagger_ui_renders_every_job_and_grid_operation(server: Server) -> None:
    with server.client() as anon:
        expected = _operations(anon.get("/openapi.json").json())
    assert ("POST", "/v1/jobs") in expected and ("POST", "/v1/grids") in expected
    with chromium_page(timeout_s=WAIT_S) as page:
        refused = _offline(page, server.url)
        page.goto(f"{server.url}/docs")
        assert refused == []
        page.wait_for_selector(".swagger-ui .opblock")
        title = page.inner_text(".swagger-ui .info .title")
        pairs = page.eval_on_selector_all(
            ".swagger-ui .opblock-summary",
            "els => els.map(e => [e.querySelector('.opblock-summary-method').innerText,"
            " e.querySelector('.opblock-summary-path').getAttribute('data-path')])",
        )
        rendered = {(method, path) for method, path in pairs}
    assert title.startswith("DINO Orchestrator API")
    assert rendered == expected
    assert {p for _, p in rendered if p.startswith(("/v1/jobs", "/v1/grids"))} >= {
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/grids",
        "/v1/grids/{grid_id}/summary",
    }
    assert refused == []


def test_redoc_renders_from_local_assets(server: Server) -> None:
    with chromium_page(timeout_s=WAIT_S) as page:
        refused = _offline(page, server.url)
        page.goto(f"{server.url}/redoc")
        assert refused == []
        page.wait_for_selector("h1:has-text('DINO Orchestrator API')")
        for summary in ("List jobs", "List grids"):  # operations render as h2 headings
            page.wait_for_selector(f"h2:text-is({summary!r})")
    assert refused == []
