"""Idempotency-Key on POSTs, sequential and concurrent, through a real server and database."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.api.conftest import Server
from tests.api.helpers import fields, grid_body, tiny


def _grids(server: Server, user: str) -> list[dict]:
    with server.client(user) as c:
        page = c.get("/v1/grids", params={"limit": 1000}).json()
        assert page["next_offset"] is None
        return list(page["items"])


def test_a_retry_returns_the_first_object_and_a_changed_body_conflicts(server: Server) -> None:
    server.add_user("ivan")
    key = str(uuid.uuid4())
    with server.client("ivan", **{"Idempotency-Key": key}) as c:
        first = c.post("/v1/grids", json=grid_body("retry"))
        again = c.post("/v1/grids", json=grid_body("retry"))
        assert first.status_code == again.status_code == 201
        assert first.json()["id"] == again.json()["id"]
        assert [j["id"] for j in first.json()["jobs"]] == [j["id"] for j in again.json()["jobs"]]
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == f"/v1/grids/{first.json()['id']}"

        changed = c.post("/v1/grids", json=grid_body("retry", priority=5))
        assert changed.status_code == 409
        assert changed.headers["content-type"] == "application/problem+json"
        assert fields(changed.json()) == ["header.idempotency-key"]
        assert key in changed.json()["detail"] and "different" in changed.json()["detail"]
        other_kind = c.post("/v1/jobs", json={"config": tiny()})
        assert other_kind.status_code == 409

        job1 = c.post("/v1/jobs", json={"config": tiny()}, headers={"Idempotency-Key": "j1"})
        job2 = c.post("/v1/jobs", json={"config": tiny()}, headers={"Idempotency-Key": "j1"})
        assert job1.status_code == job2.status_code == 201
        assert job1.json()["id"] == job2.json()["id"]
    # keys belong to their user: the same key from another user is a new grid
    server.add_user("judy")
    with server.client("judy", **{"Idempotency-Key": key}) as judy:
        theirs = judy.post("/v1/grids", json=grid_body("retry"))
        assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    assert len(_grids(server, "ivan")) == 1
    with server.client("ivan") as c:
        # the grid's 4 pretraining and 4 k-NN jobs, its k-NN baselines job, and the job
        assert len(c.get("/v1/jobs", params={"limit": 1000}).json()["items"]) == 8 + 1 + 1


def _post(server: Server, token: str, key: str, name: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as c:
        return c.post("/v1/grids", json=grid_body(name, evals=[]))


def test_100_concurrent_submissions_make_100_grids(server: Server) -> None:
    token = server.add_user("kate")
    keys = [f"k-{i}" for i in range(100)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(lambda k: _post(server, token, k, f"c{k}"), keys))
    assert [r.status_code for r in responses] == [201] * 100, [r.text for r in responses[:3]]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 100
    stored = _grids(server, "kate")
    assert {g["id"] for g in stored} == ids
    assert all(g["n_combinations"] == 4 and g["counts"] == {"QUEUED": 4} for g in stored)


def test_concurrent_retries_with_one_key_make_one_grid(server: Server) -> None:
    """Exactly one of 30 concurrent copies creates the grid; the 29 others say they replayed
    it (decided by the insert that wins, not by a look-up before it that all copies pass)."""
    token = server.add_user("leo")
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(lambda _: _post(server, token, "same", "once"), range(30)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    flags = sorted(r.headers.get("idempotent-replayed", "-") for r in responses)
    assert flags == ["-"] + ["true"] * 29, flags
    assert len(_grids(server, "leo")) == 1
    with server.client("leo") as c:
        assert len(c.get("/v1/jobs", params={"limit": 1000}).json()["items"]) == 4
