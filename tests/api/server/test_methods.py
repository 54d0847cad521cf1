"""``OPTIONS`` and ``405``: the ``Allow`` header names every method of the path, also where
two routes share it (``GET`` and ``POST /v1/jobs``), through a real server."""

from __future__ import annotations

import pytest

from tests.api.conftest import Server

PATHS = {
    "/v1/jobs": "GET, OPTIONS, POST",
    "/v1/grids": "GET, OPTIONS, POST",
    "/v1/jobs/job-000000000000": "GET, OPTIONS",
    "/v1/jobs/job-000000000000/cancel": "OPTIONS, POST",
    "/healthz": "GET, OPTIONS",
}


@pytest.mark.parametrize(("path", "allow"), sorted(PATHS.items()))
def test_options_lists_every_method_of_the_path(server: Server, path: str, allow: str) -> None:
    with server.client() as anon:
        r = anon.options(path)
    assert r.status_code == 204, r.text
    assert r.headers["allow"] == allow
    assert r.content == b""


def test_a_method_no_route_takes_is_405_naming_all_the_paths_methods(server: Server) -> None:
    with server.client("alice") as c:
        r = c.delete("/v1/jobs")
        assert r.status_code == 405
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["allow"] == "GET, OPTIONS, POST"
        assert c.put("/v1/grids/grid-000000000000").headers["allow"] == "GET, OPTIONS"
        assert c.options("/v1/no-such-route").status_code == 404
