"""Reconciling after an orchestrator is gone: re-attach live actors, requeue lost attempts."""

from __future__ import annotations

import pytest
import ray

from orchestrator import outcomes, registry
from orchestrator.db import Database
from orchestrator.models import Orchestrator
from orchestrator.runner import JobRunner, actor_name
from orchestrator.scheduler import Scheduler
from orchestrator.schemas import JobRequest, UserView
from orchestrator.service import submit_job
from orchestrator.specs import actor_options, build_spec
from tests.orchestrator.harness import (
    JOB_FN,
    attempts_of,
    dead_orchestrator,
    events_of,
    fast_settings,
    job_row,
    running_scheduler,
    wait_until,
)
from tests.orchestrator.jobfns import read_log
from worker.contracts import Resources

pytestmark = pytest.mark.usefixtures("ray_conn")


def test_restart_reattaches_live_actors_and_requeues_lost_ones(
    db: Database, alice: UserView
) -> None:
    dead = dead_orchestrator(db)
    tags = {"t.steps": "12", "t.step_s": "0.05"}
    live = submit_job(db, alice, JobRequest(name="live", tags=tags))
    lost = submit_job(db, alice, JobRequest(name="lost", tags=tags))
    # What the dead orchestrator left: both claimed; only "live" got its actor started.
    for job in (live, lost):
        assert outcomes.claim(db, job.id, dead) is not None
    spec = build_spec(job_row(db, live.id), "sqlite:///unused.db", None)
    opts = actor_options(Resources(), actor_name(live.id, 1), "dino-test")
    runner = ray.remote(JobRunner).options(**opts).remote(spec.model_dump_json(), JOB_FN)
    ray.get(runner.poll.remote(0, 0.0))
    with running_scheduler(db) as sched:
        wait_until(
            lambda: all(job_row(db, j.id).status == "SUCCEEDED" for j in (live, lost)),
            "both jobs",
        )
        # The job row turns SUCCEEDED before the loop drops its tracking entry: wait for both
        # (asserting at once failed on a loaded host).
        wait_until(
            lambda: all(t.job_id not in (live.id, lost.id) for t in list(sched.tracked.values())),
            "the scheduler to stop tracking both jobs",
        )
    adopted = events_of(db, live.id, "adopted")
    assert len(adopted) == 1 and f"orchestrator {dead} is gone" in adopted[0].reason
    assert [a.status for a in attempts_of(db, live.id)] == ["SUCCEEDED"]
    assert [e["event"] for e in read_log(job_row(db, live.id).storage_uri)] == ["start", "end"]
    first, second = attempts_of(db, lost.id)
    assert first.status == "LOST" and "its Ray actor" in (first.error or "")
    assert second.status == "SUCCEEDED" and job_row(db, lost.id).failed_attempts == 1


def test_stopping_with_its_own_local_ray_requeues_without_a_failure(
    db: Database, alice: UserView
) -> None:
    job = submit_job(db, alice, JobRequest(name="j", tags={"t.steps": "200", "t.step_s": "0.05"}))
    sched = Scheduler(db, fast_settings())
    sched.start()
    wait_until(lambda: (sched.tick(), (job_row(db, job.id).step or 0) >= 3)[1], "progress")
    sched.stop(owns_ray=True)  # as run_orchestrator does before ray.shutdown()
    row = job_row(db, job.id)
    assert row.status == "QUEUED" and row.attempt == 2 and row.failed_attempts == 0
    assert "will resume from the checkpoint" in row.status_reason
    assert [a.status for a in attempts_of(db, job.id)] == ["ABANDONED"]
    with pytest.raises(ValueError):
        ray.get_actor(actor_name(job.id, 1), namespace="dino-test")
    with db.session() as s:
        me = s.get(Orchestrator, sched.id)
        assert me is not None and me.stopped_at is not None
    assert sched.id not in registry.live_orchestrators(db, 60.0)
