"""Two Ray nodes on this machine (``ray start --address`` with ``--resources '{"spot": 1}'``):
a job needing the second node's resource waits, runs there once the node joins, and when
that node dies its attempt is requeued without using one of the job's ``max_attempts`` (the
cause is an event), then finishes on the node that replaces it. (A crash of the job's code
still counts: ``test_scheduler.test_failures_retry_with_back_off_then_succeed_or_give_up``.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.db import Database
from orchestrator.schemas import JobRequest, UserView
from orchestrator.service import cluster_info, submit_job
from tests.orchestrator.harness import (
    attempts_of,
    events_of,
    job_row,
    running_scheduler,
    status_of,
    wait_until,
)
from tests.orchestrator.raynodes import RayNode, kill_node, node_alive, node_id_of, start_worker
from worker.contracts import Resources

pytestmark = pytest.mark.slow  # two `ray start`s and a node death: ~55 s on 2 cores


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_job_waits_for_its_node_and_a_lost_node_does_not_use_an_attempt(
    db: Database, alice: UserView, ray_conn: RayNode, tmp_path: Path
) -> None:
    hold = tmp_path / "release"
    job = submit_job(
        db,
        alice,
        JobRequest(
            name="spot",
            max_attempts=1,  # a counted failure would end it FAILED
            resources=Resources(num_cpus=1, custom={"spot": 1}),
            tags={"t.steps": "2", "t.hold_file": str(hold)},
        ),
    )
    other = submit_job(db, alice, JobRequest(name="plain"))
    nodes: list[RayNode] = []
    try:
        with running_scheduler(db):
            wait_until(lambda: status_of(db, other.id) == "SUCCEEDED", "the plain job")
            wait_until(lambda: events_of(db, job.id, "waiting"), "the spot job to wait")
            assert status_of(db, job.id) == "QUEUED"
            nodes.append(start_worker(ray_conn, num_cpus=1, resources={"spot": 1}))
            first = wait_until(lambda: node_id_of(nodes[0]), "the second node to join")
            wait_until(lambda: job_row(db, job.id).step == 2, "attempt 1 to checkpoint")
            info = wait_until(
                lambda: (ci := cluster_info(db)).resources_total.get("spot") and ci,
                "a heartbeat that sees the second node",
            )
            kill_node(nodes[0])
            wait_until(lambda: events_of(db, job.id, "node_lost"), "the node loss recorded", 90)
            assert status_of(db, job.id) == "QUEUED"  # waits for a node with `spot` again
            hold.touch()
            nodes.append(start_worker(ray_conn, num_cpus=1, resources={"spot": 1}))
            second = wait_until(lambda: node_id_of(nodes[1]), "the replacement node to join")
            wait_until(lambda: status_of(db, job.id) == "SUCCEEDED", "attempt 2", 180)
        assert len(info.nodes) == 2 and info.resources_total["CPU"] == 3.0
        row = job_row(db, job.id)
        assert (row.attempt, row.failed_attempts) == (2, 0)
        assert [a.status for a in attempts_of(db, job.id)] == ["LOST", "SUCCEEDED"]
        (lost,) = events_of(db, job.id, "node_lost")
        assert lost.attempt == 1 and lost.data["node_id"] == first
        assert first in lost.reason and "not counted" in lost.reason
        assert lost.data["cause"] and lost.data["counted"] is False
        # each attempt ran on the node that had the resource at the time
        assert [e.data["node_id"] for e in events_of(db, job.id, "placed")] == [first, second]
    finally:
        for node in nodes:
            kill_node(node)
        for node in nodes:
            wait_until(lambda n=node: not node_alive(n), "Ray to see the node gone", 60)
