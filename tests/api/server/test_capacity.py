"""A job no node can ever hold, through a real server, orchestrator loop and 2-CPU Ray node:
it says why it waits (``dino job`` shows it), and on a cluster that cannot grow the next
such request is refused at submit naming the field (``resources.num_cpus``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from api.cli.main import app
from orchestrator import service
from tests.api.conftest import Server, orchestrating, running_server
from tests.api.helpers import fields, grid_body, tiny
from tests.orchestrator.harness import wait_until
from tests.orchestrator.raynodes import RayNode

pytestmark = pytest.mark.slow
REASON = "needs 64 CPUs; the largest node has 2 CPUs"
FAT = {"config": tiny(), "resources": {"num_cpus": 64}}
# autoscaling off is what a local Ray reports; here a `ray start` node stands in for one
ORCH: dict[str, Any] = {
    "job_fn": "tests.orchestrator.jobfns:steps_job",
    "mlflow_setup": False,
    "autoscaling": False,
}


def _detail(c: httpx.Client, job_id: str) -> dict[str, Any]:
    detail: dict[str, Any] = c.get(f"/v1/jobs/{job_id}").json()
    return detail


def _waiting_job_says_why(srv: Server, c: httpx.Client, job_id: str) -> None:
    reason = f"waiting for capacity: {REASON}"
    wait_until(lambda: _detail(c, job_id)["status_reason"] == reason, "the waiting reason")
    detail = _detail(c, job_id)
    assert detail["status"] == "QUEUED"
    waiting = [e for e in detail["events"] if e["kind"] == "waiting"]
    assert len(waiting) == 1 and waiting[0]["data"]["field"] == "resources.num_cpus"
    env = {"DINO_API_URL": srv.url, "DINO_TOKEN": srv.tokens["alice"], "COLUMNS": "200"}
    shown = CliRunner().invoke(app, ["job", job_id], env=env)
    assert f"QUEUED: {reason}" in shown.output, shown.output


def _unrunnable_requests_are_refused(c: httpx.Client) -> None:
    again = c.post("/v1/jobs", json=FAT)
    assert again.status_code == 422, again.text
    assert fields(again.json()) == ["body.resources.num_cpus"]
    assert REASON in again.json()["detail"] and "does not grow" in again.json()["detail"]
    grid = grid_body("too-big", eval_resources={"num_cpus": 1, "num_gpus": 1})
    dry = c.post("/v1/grids", params={"dry_run": "true"}, json=grid)
    assert dry.status_code == 422, dry.text
    assert fields(dry.json()) == ["body.eval_resources.num_gpus"]
    assert "needs 1 GPU; the largest node has 0 GPUs" in dry.json()["detail"]
    fits = grid_body("fits", resources={"num_cpus": 2}, evals=[])  # the whole node: fine
    ok = c.post("/v1/grids", params={"dry_run": "true"}, json=fits)
    assert ok.status_code == 200, ok.text


def test_a_job_no_node_can_hold_says_why_and_the_next_is_refused(
    api_home: Path, ray_head: RayNode, tmp_path: Path
) -> None:
    with (
        running_server(tmp_path / "capacity.db", api_home / "datasets") as srv,
        srv.client("alice") as c,
    ):
        early = c.post("/v1/jobs", json=FAT)  # no cluster reported yet: nothing to judge by
        assert early.status_code == 201, early.text
        with orchestrating(srv, ray_head, **ORCH):
            _waiting_job_says_why(srv, c, early.json()["id"])
            assert service.cluster_info(srv.db).fixed_size
            _unrunnable_requests_are_refused(c)
            c.post(f"/v1/jobs/{early.json()['id']}/cancel")
