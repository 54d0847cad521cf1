"""Bearer tokens and ownership through a real server: 401 without a valid token, another
user's job or grid is a 404 (ids do not leak), admins see and cancel everything."""

from __future__ import annotations

import pytest

from api.server.auth import TOKEN_PREFIX, issue_token
from orchestrator.service import get_user_by_name, hash_token
from tests.api.conftest import Server
from tests.api.helpers import grid_body, tiny

PROTECTED = [
    ("GET", "/v1/jobs"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/job-000000000000"),
    ("POST", "/v1/jobs/job-000000000000/cancel"),
    ("GET", "/v1/grids"),
    ("POST", "/v1/grids"),
    ("GET", "/v1/grids/grid-000000000000"),
    ("GET", "/v1/grids/grid-000000000000/summary"),
    ("POST", "/v1/grids/grid-000000000000/cancel"),
    ("GET", "/v1/cluster"),
    ("GET", "/v1/me"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_route_but_healthz_needs_a_token(server: Server, method: str, path: str) -> None:
    with server.client() as anon, server.client(Authorization="Bearer dino_not-a-token") as bad:
        for c in (anon, bad):
            r = c.request(method, path, json={} if method == "POST" else None)
            assert r.status_code == 401, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"].startswith('Bearer realm="dino"')
            assert r.json()["status"] == 401 and "token" in r.json()["detail"]
        assert anon.get("/healthz").json()["status"] == "ok"


def test_tokens_are_stored_hashed_and_rotation_revokes_the_old_one(server: Server) -> None:
    token = issue_token(server.db, "carol")
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    user = get_user_by_name(server.db, "carol")
    assert user is not None
    with server.db.session() as s:
        from orchestrator.models import User

        row = s.get(User, user.id)
        assert row is not None and row.token_hash == hash_token(token) != token
    new = issue_token(server.db, "carol", rotate=True)
    with server.client(Authorization=f"Bearer {token}") as old_c:
        assert old_c.get("/v1/me").status_code == 401
    with server.client(Authorization=f"Bearer {new}") as new_c:
        assert new_c.get("/v1/me").json()["name"] == "carol"


def test_another_users_job_is_not_found_and_admin_sees_all(server: Server) -> None:
    server.add_user("dave")
    server.add_user("erin")
    with (
        server.client("dave") as dave,
        server.client("erin") as erin,
        server.client("root") as root,
    ):
        job = dave.post("/v1/jobs", json={"name": "mine", "config": tiny()}).json()
        grid = dave.post("/v1/grids", json=grid_body("dave-grid")).json()
        for path in (
            f"/v1/jobs/{job['id']}",
            f"/v1/grids/{grid['id']}",
            f"/v1/grids/{grid['id']}/summary",
        ):
            r = erin.get(path)
            assert r.status_code == 404, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert dave.get(path).status_code == 200
            assert root.get(path).status_code == 200
        assert erin.post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
        assert erin.post(f"/v1/grids/{grid['id']}/cancel").status_code == 404
        assert dave.get(f"/v1/jobs/{job['id']}").json()["status"] == "QUEUED"
        # the same 404 as for an id that never existed: nothing tells them apart
        missing = erin.get("/v1/jobs/job-ffffffffffff").json()
        hidden = erin.get(f"/v1/jobs/{job['id']}").json()
        assert missing["title"] == hidden["title"] and missing["type"] == hidden["type"]

        assert erin.get("/v1/jobs").json()["items"] == []
        assert erin.get("/v1/jobs", params={"owner": "dave"}).json()["items"] == []
        mine = {j["id"] for j in dave.get("/v1/jobs", params={"limit": 1000}).json()["items"]}
        assert job["id"] in mine and len(mine) == 1 + 8 + 1  # job, 4 x (pretrain + knn), baselines
        by_owner = root.get("/v1/jobs", params={"owner": "dave", "limit": 1000}).json()["items"]
        assert {j["id"] for j in by_owner} == mine
        assert job["id"] in {j["id"] for j in root.get("/v1/jobs?limit=1000").json()["items"]}
        assert root.get("/v1/jobs", params={"owner": "nobody"}).json()["items"] == []

        cancelled = root.post(f"/v1/jobs/{job['id']}/cancel", json={"reason": "admin"}).json()
        assert cancelled["status"] == "CANCELLED" and cancelled["status_reason"] == "admin"
        again = dave.post(f"/v1/jobs/{job['id']}/cancel")
        assert again.status_code == 200 and again.json()["status"] == "CANCELLED"
        g = dave.post(f"/v1/grids/{grid['id']}/cancel").json()
        assert g["counts"] == {"CANCELLED": 9} and g["status"] == "FINISHED"  # + baselines job


def test_me_names_the_caller(server: Server) -> None:
    with server.client("root") as root, server.client("alice") as alice:
        assert root.get("/v1/me").json()["role"] == "admin"
        assert alice.get("/v1/me").json()["name"] == "alice"
