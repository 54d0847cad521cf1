"""What is public and what is for admins, through a real server: the docs without a token
only while ``DINO_PUBLIC_DOCS`` is on; ``/metrics`` (every user's job counts) for admins;
``/v1/cluster`` in full for admins, without hosts, PIDs or addresses for plain users."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.server.settings import ApiSettings
from orchestrator import registry
from tests.api.conftest import Server, running_server
from tests.api.helpers import tiny

DOCS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")


@pytest.fixture(scope="module")
def closed(api_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with ``public_docs`` off (what the deploy files set)."""
    db_path = tmp_path_factory.mktemp("closed") / "api.db"
    with running_server(db_path, api_home / "datasets", public_docs=False) as srv:
        yield srv


def test_docs_need_a_token_when_not_public(closed: Server) -> None:
    with closed.client() as anon, closed.client("alice") as alice:
        for path in DOCS:
            r = anon.get(path)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert alice.get(path).status_code == 200, path
        schema = alice.get("/openapi.json").json()
        page = alice.get("/docs").text
        assert "swagger-ui-bundle.js" in page  # still the assets this server serves
        assert alice.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert "/v1/jobs" in schema["paths"] and not set(DOCS) & set(schema["paths"])


def test_public_docs_is_the_embedded_default_and_read_from_the_environment(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    with server.client() as anon:
        assert [anon.get(p).status_code for p in DOCS] == [200] * len(DOCS)
    assert ApiSettings.from_env().public_docs is True
    monkeypatch.setenv("DINO_PUBLIC_DOCS", "false")
    assert ApiSettings.from_env().public_docs is False
    monkeypatch.setenv("DINO_PUBLIC_DOCS", "maybe")
    with pytest.raises(ValueError, match="public_docs"):
        ApiSettings.from_env()


def test_metrics_are_for_admins(server: Server) -> None:
    with server.client("alice") as alice, server.client("root") as admin:
        r = alice.get("/metrics")
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        assert "admin" in r.json()["detail"]
        assert admin.get("/metrics").status_code == 200


def test_plain_users_see_a_cluster_view_without_hosts_pids_or_addresses(
    api_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    db_path = tmp_path_factory.mktemp("cluster") / "api.db"
    with running_server(db_path, api_home / "datasets") as srv:
        report = {  # what an orchestrator's heartbeat stores (orchestrator.ray_cluster)
            "total": {"CPU": 2.0, "memory": 1e9, "node:10.1.2.3": 1.0},
            "available": {"CPU": 1.0, "memory": 1e9, "node:10.1.2.3": 1.0},
            "nodes": [
                {
                    "node_id": "abc123",
                    "address": "10.1.2.3",
                    "alive": True,
                    "resources": {"CPU": 2.0, "node:10.1.2.3": 1.0},
                }
            ],
            "address": "10.1.2.3:6379",
            "lease_s": 60.0,
        }
        registry.register(srv.db, "orch-test-1", "10.1.2.3:6379", report)
        with srv.client("alice") as alice, srv.client("bob") as bob:
            assert alice.post("/v1/jobs", json={"config": tiny()}).status_code == 201
            for _ in range(2):
                assert bob.post("/v1/jobs", json={"config": tiny()}).status_code == 201
            mine = alice.get("/v1/cluster")
        with srv.client("root") as admin:
            full = admin.get("/v1/cluster").json()
    assert mine.status_code == 200
    view = mine.json()
    assert view["view"] == "user" and view["orchestrators"] == []
    assert view["orchestrators_alive"] == 1
    assert view["nodes"] == [{"alive": True, "resources": {"CPU": 2.0}}]
    assert view["resources_total"] == {"CPU": 2.0, "memory": 1e9}
    assert view["resources_used"] == {"CPU": 1.0, "memory": 0.0}
    assert view["queue"]["jobs_by_state"]["QUEUED"] == 1  # alice's own job, not bob's two
    for secret in ("10.1.2.3", "abc123", "orch-test-1"):
        assert secret not in mine.text, secret
    assert full["view"] == "admin" and full["queue"]["jobs_by_state"]["QUEUED"] == 3
    assert full["orchestrators"][0]["ray_address"] == "10.1.2.3:6379"
    assert full["nodes"][0]["address"] == "10.1.2.3"
