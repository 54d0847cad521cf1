"""Two Ray nodes on this machine: a job needing the second node's resource waits, then runs
on it once the node joins (``ray start --address`` with ``--resources '{"special": 1}'``)."""

from __future__ import annotations

import pytest
import ray

from orchestrator.db import Database
from orchestrator.schemas import JobRequest, UserView
from orchestrator.service import cluster_info, submit_job
from tests.orchestrator.harness import events_of, running_scheduler, status_of, wait_until
from tests.orchestrator.raynodes import RayNode, kill_node, start_worker
from worker.contracts import Resources


def _node_with(resource: str) -> str | None:
    for node in ray.nodes():
        if node.get("Alive") and node.get("Resources", {}).get(resource):
            return str(node["NodeID"])
    return None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_job_waits_for_a_node_with_its_resource_then_runs_there(
    db: Database, alice: UserView, ray_conn: RayNode
) -> None:
    need = Resources(num_cpus=1, custom={"special": 1})
    job = submit_job(db, alice, JobRequest(name="special", resources=need))
    other = submit_job(db, alice, JobRequest(name="plain"))
    worker: RayNode | None = None
    try:
        with running_scheduler(db):
            wait_until(lambda: status_of(db, other.id) == "SUCCEEDED", "the plain job")
            wait_until(lambda: events_of(db, job.id, "waiting"), "the special job to wait")
            assert status_of(db, job.id) == "QUEUED"
            worker = start_worker(ray_conn, num_cpus=1, resources={"special": 1})
            node_id = wait_until(lambda: _node_with("special"), "the second node to join")
            wait_until(lambda: status_of(db, job.id) == "SUCCEEDED", "the special job", 180)
            info = wait_until(
                lambda: (ci := cluster_info(db)).resources_total.get("special") and ci,
                "a heartbeat that sees the second node",
            )
        (placed,) = events_of(db, job.id, "placed")
        assert placed.data["node_id"] == node_id  # it ran on the node that has the resource
        assert len(info.nodes) == 2 and info.resources_total["CPU"] == 3.0
    finally:
        if worker is not None:
            kill_node(worker)
            wait_until(lambda: _node_with("special") is None, "Ray to see the node gone", 60)
