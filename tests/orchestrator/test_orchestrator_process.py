"""``python -m orchestrator`` as a real process: SIGKILL it mid-grid, restart, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator.db import Database
from orchestrator.models import Orchestrator
from orchestrator.schemas import JobRequest, UserView
from orchestrator.service import submit_job
from tests.orchestrator.harness import (
    JOB_FN,
    attempts_of,
    events_of,
    job_row,
    status_of,
    wait_until,
)
from tests.orchestrator.jobfns import read_log
from tests.orchestrator.raynodes import REPO, RayNode

pytestmark = pytest.mark.usefixtures("ray_conn")

ORCH_ENV = {
    "DINO_ORCH_NAMESPACE": "dino-test",
    "DINO_ORCH_POLL_INTERVAL_S": "0.05",
    "DINO_ORCH_ACTOR_WAIT_S": "0.5",
    "DINO_ORCH_HEARTBEAT_S": "0.5",
    "DINO_ORCH_LEASE_S": "30",
    "DINO_ORCH_MLFLOW_SETUP": "false",
}


@contextmanager
def orchestrator_process(
    db_url: str, head: RayNode, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``python -m orchestrator`` on the shared Ray; SIGKILL it if still alive at exit."""
    env = {**os.environ, **ORCH_ENV}
    args = [
        sys.executable,
        "-m",
        "orchestrator",
        "--database-url",
        db_url,
        "--ray-address",
        head.address,
        "--job-fn",
        JOB_FN,
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)


def test_sigkilled_orchestrator_restarts_and_runs_every_job_once(
    db: Database, db_url: str, alice: UserView, ray_conn: RayNode, tmp_path: Path
) -> None:
    tags = {"t.steps": "30", "t.step_s": "0.1"}
    jobs = [submit_job(db, alice, JobRequest(name=f"j{i}", tags=tags)).id for i in range(5)]
    log = tmp_path / "orchestrator.log"

    def running_with_progress() -> list[str]:
        rows = [job_row(db, j) for j in jobs]
        return [r.id for r in rows if r.status == "RUNNING" and (r.step or 0) >= 3]

    with orchestrator_process(db_url, ray_conn, log) as first:
        running = wait_until(
            lambda: len(running_with_progress()) == 2 and running_with_progress(), "two jobs to run"
        )
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    queued = [j for j in jobs if status_of(db, j) == "QUEUED"]
    assert len(queued) == 3  # nothing was claimed after the kill
    with orchestrator_process(db_url, ray_conn, log) as second:
        wait_until(lambda: all(status_of(db, j) == "SUCCEEDED" for j in jobs), "all jobs", 240)
        second.send_signal(signal.SIGTERM)  # a clean stop this time
        assert second.wait(60) == 0
    for job_id in jobs:
        assert [a.number for a in attempts_of(db, job_id)] == [1], job_id  # none ran twice
        entries = read_log(job_row(db, job_id).storage_uri)
        assert [e["event"] for e in entries] == ["start", "end"], job_id
    for job_id in running:  # re-attached to the actors that kept running
        (adopted,) = events_of(db, job_id, "adopted")
        assert "is gone; re-attached to dino-job-" in adopted.reason
    with db.session() as s:
        rows = s.query(Orchestrator).order_by(Orchestrator.started_at).all()
        assert [r.stopped_at is None for r in rows] == [True, False]  # killed, then stopped
    assert "stopped" in log.read_text()
