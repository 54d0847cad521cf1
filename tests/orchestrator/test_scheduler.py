"""The scheduler on a real 2-CPU Ray node with a real job function (tests.orchestrator.jobfns)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import ray

from orchestrator.db import Database
from orchestrator.schemas import GridRequest, JobRequest, UserView
from orchestrator.service import (
    cancel_job,
    get_grid,
    grid_summary,
    list_jobs,
    submit_grid,
    submit_job,
)
from tests.orchestrator.backends import sqlite_only
from tests.orchestrator.harness import (
    all_ended,
    attempts_of,
    events_of,
    job_row,
    running_scheduler,
    status_of,
    wait_until,
)
from tests.orchestrator.jobfns import read_log
from tests.tiny import tiny_vit
from worker.contracts import Resources

pytestmark = pytest.mark.usefixtures("ray_conn")

BASE = {
    "model": tiny_vit(),
    "crops": {"global_size": 16, "local_size": 8},
}
AXES = {
    "loss.teacher_temp": [0.04, 0.07],
    "teacher.momentum": [0.99, 0.996],
    "crops.local_number": [0, 6],
}


def test_grid_of_eight_runs_to_a_correct_summary(db: Database, alice: UserView) -> None:
    req = GridRequest(name="g8", base_config=BASE, axes=AXES, evals=["eval_knn"])
    grid = submit_grid(db, alice, req)
    with running_scheduler(db):
        wait_until(lambda: get_grid(db, alice, grid.id).status == "SUCCEEDED", "the grid")
        wait_until(lambda: get_grid(db, alice, grid.id).finished_at, "the grid to be closed")
    rows = grid_summary(db, alice, grid.id)
    assert len(rows) == 8
    for row, job in zip(rows, [j for j in grid.jobs if j.kind == "pretrain"], strict=True):
        assert row.job_id == job.id and row.axis_values == job.axis_values
        assert row.status == "SUCCEEDED" and not row.collapsed
        assert row.metrics == {"loss": pytest.approx(10 / 3), "steps": 3.0}
        assert row.step == 3 and row.total_steps == 3
        assert row.mlflow_run_id == f"run-{job.id}-a1"
        knn = row.evals["eval_knn"]
        assert knn.status == "SUCCEEDED" and knn.metrics == {"knn_top1": 0.5}
        done = job_row(db, job.id)
        # the eval job scored the pretraining job's final checkpoint
        assert done.checkpoint_uri == str(Path(done.storage_uri) / "ckpt.json")
        knn_log = read_log(job_row(db, knn.job_id).storage_uri)
        assert knn_log[0]["source"] == done.checkpoint_uri
        assert [a.status for a in attempts_of(db, job.id)] == ["SUCCEEDED"]
        kinds = [(e.kind, e.to_status) for e in events_of(db, job.id)]
        assert kinds[:2] == [("submitted", "QUEUED"), ("transition", "RUNNING")]
        assert ("started", None) in kinds and kinds.count(("checkpoint", None)) == 3
        assert ("transition", "SUCCEEDED") in kinds


@sqlite_only
def test_priority_first_then_fifo(db: Database, alice: UserView, tmp_path: Path) -> None:
    whole = Resources(num_cpus=2)  # one job at a time on the 2-CPU node
    gate = tmp_path / "go"
    blocker = submit_job(
        db, alice, JobRequest(name="blocker", resources=whole, tags={"t.hold_file": str(gate)})
    )
    with running_scheduler(db):
        wait_until(lambda: status_of(db, blocker.id) == "RUNNING", "the blocker to run")
        order = [("low1", 0), ("high1", 5), ("low2", 0), ("high2", 5), ("mid", 3)]
        ids = {
            name: submit_job(
                db, alice, JobRequest(name=name, priority=p, resources=whole, tags={"t.steps": "1"})
            ).id
            for name, p in order
        }
        gate.touch()
        wait_until(lambda: all_ended(db, list(ids.values())), "all jobs")
    claimed = sorted(ids, key=lambda n: attempts_of(db, ids[n])[0].claimed_at)
    assert claimed == ["high1", "high2", "mid", "low1", "low2"]
    assert all(status_of(db, i) == "SUCCEEDED" for i in ids.values())


@sqlite_only
def test_cancel_stops_running_jobs_cooperatively_or_by_kill(db: Database, alice: UserView) -> None:
    slow = {"t.steps": "400", "t.step_s": "0.05"}
    polite = submit_job(db, alice, JobRequest(name="polite", tags=slow, evals=["eval_knn"]))
    stubborn = submit_job(
        db, alice, JobRequest(name="stubborn", tags={**slow, "t.ignore_cancel": "1"})
    )
    with running_scheduler(db, cancel_grace_s=1.0) as sched:
        for job in (polite, stubborn):
            wait_until(lambda j=job: (job_row(db, j.id).step or 0) >= 2, f"{job.name} to progress")
        cancel_job(db, alice, polite.id)
        cancel_job(db, alice, stubborn.id)
        wait_until(lambda: all_ended(db, [polite.id, stubborn.id]), "both cancels")
        wait_until(lambda: not sched.tracked, "the scheduler to let go of both")
    p, s = job_row(db, polite.id), job_row(db, stubborn.id)
    assert (
        p.status == "CANCELLED"
        and p.status_reason == "attempt 1 ended CANCELLED (cancel requested)"
    )
    assert read_log(p.storage_uri)[-1] == {"attempt": 1, "event": "end", "status": "CANCELLED"}
    assert (
        s.status == "CANCELLED"
        and s.status_reason == "did not stop within 1 s of the cancel; killed"
    )
    with pytest.raises(ValueError):
        ray.get_actor(f"dino-job-{stubborn.id}-a1", namespace="dino-test")
    for job_id in (polite.id, stubborn.id):
        (attempt,) = attempts_of(db, job_id)
        assert attempt.status == "CANCELLED" and attempt.released
    (knn,) = [j for j in list_jobs(db, alice) if j.depends_on == polite.id]
    assert (
        knn.status == "CANCELLED"
        and knn.status_reason == f"pretraining job {polite.id} ended CANCELLED"
    )


@sqlite_only
def test_failures_retry_with_back_off_then_succeed_or_give_up(
    db: Database, alice: UserView
) -> None:
    flaky = submit_job(db, alice, JobRequest(name="flaky", tags={"t.fail_attempts": "1"}))
    doomed = submit_job(
        db,
        alice,
        JobRequest(
            name="doomed", max_attempts=2, evals=["eval_knn"], tags={"t.fail_attempts": "9"}
        ),
    )
    crash = submit_job(
        db, alice, JobRequest(name="crash", max_attempts=1, tags={"t.outcome": "raise"})
    )
    with running_scheduler(db, backoff_base_s=0.3):
        wait_until(lambda: all_ended(db, [flaky.id, doomed.id, crash.id]), "three jobs")
    f = job_row(db, flaky.id)
    assert f.status == "SUCCEEDED" and f.attempt == 2 and f.failed_attempts == 1
    first, second = attempts_of(db, flaky.id)
    assert (first.status, second.status) == ("FAILED", "SUCCEEDED")
    assert first.ended_at is not None
    assert (second.claimed_at - first.ended_at).total_seconds() >= 0.3  # back-off honoured
    retry = [e for e in events_of(db, flaky.id, "transition") if e.to_status == "QUEUED"]
    assert len(retry) == 1 and retry[0].from_status == "RUNNING"
    assert retry[0].reason.startswith(
        "attempt 1 failed: planned failure of attempt 1; retry as attempt 2"
    )
    log = read_log(f.storage_uri)
    assert [e["run_id"] for e in log if e["event"] == "start"] == [f"run-{flaky.id}-a1"] * 2

    d = job_row(db, doomed.id)
    assert d.status == "FAILED" and d.failed_attempts == 2
    assert "giving up after 2 failed attempt(s)" in d.status_reason
    (knn,) = [j for j in list_jobs(db, alice) if j.depends_on == doomed.id]
    assert knn.status == "CANCELLED" and knn.status_reason == f"pretraining job {doomed.id} FAILED"

    c = job_row(db, crash.id)
    assert c.status == "FAILED" and "RuntimeError: planned exception" in (c.error or "")
    assert [a.status for a in attempts_of(db, crash.id)] == ["LOST"]


@sqlite_only
def test_a_failure_no_retry_can_fix_ends_the_job_at_once(db: Database, alice: UserView) -> None:
    """config / data / code failures end the job FAILED after one attempt; infrastructure
    and runtime failures are retried as before."""
    kinds = ("config", "data", "code", "infrastructure", "runtime")
    jobs = {
        kind: submit_job(
            db, alice, JobRequest(name=kind, tags={"t.fail_attempts": "1", "t.failure": kind})
        )
        for kind in kinds
    }
    with running_scheduler(db, backoff_base_s=0.1):
        wait_until(lambda: all_ended(db, [j.id for j in jobs.values()]), "five jobs")
    for kind in ("config", "data", "code"):
        row = job_row(db, jobs[kind].id)
        assert (row.status, row.attempt, row.failed_attempts) == ("FAILED", 1, 1), kind
        assert row.status_reason == (
            f"attempt 1 failed with a {kind} error: planned failure of attempt 1; not "
            f"retried: a {kind} error fails every attempt the same way"
        )
        assert [a.status for a in attempts_of(db, row.id)] == ["FAILED"]
    for kind in ("infrastructure", "runtime"):
        row = job_row(db, jobs[kind].id)
        assert (row.status, row.attempt) == ("SUCCEEDED", 2), kind


@sqlite_only
def test_collapse_ends_one_combination_and_the_grid_goes_on(db: Database, alice: UserView) -> None:
    req = GridRequest(
        name="col",
        base_config=BASE,
        axes={"loss.teacher_temp": [0.04, 0.07, 0.1]},
        evals=["eval_knn"],
        tags={"t.collapse_when": "loss.teacher_temp=0.04"},
    )
    grid = submit_grid(db, alice, req)
    with running_scheduler(db):
        wait_until(lambda: get_grid(db, alice, grid.id).status == "FINISHED", "the grid")
    rows = grid_summary(db, alice, grid.id)
    assert [r.status for r in rows] == ["COLLAPSED", "SUCCEEDED", "SUCCEEDED"]
    assert rows[0].collapsed and rows[0].collapse_kind == "uniform"
    assert not rows[1].collapsed
    assert rows[0].evals["eval_knn"].status == "CANCELLED"
    assert [r.evals["eval_knn"].status for r in rows[1:]] == ["SUCCEEDED", "SUCCEEDED"]
    assert [e.reason for e in events_of(db, rows[0].job_id, "collapse")] == [
        "uniform collapse detected"
    ]


@sqlite_only
def test_killed_job_process_resumes_from_its_checkpoint_in_the_same_run(
    db: Database, alice: UserView
) -> None:
    job = submit_job(db, alice, JobRequest(name="kill", tags={"t.steps": "40", "t.step_s": "0.05"}))
    with running_scheduler(db, backoff_base_s=0.1):
        wait_until(lambda: (job_row(db, job.id).step or 0) >= 5, "5 steps")
        pid = int((Path(job_row(db, job.id).storage_uri) / "pid-a1").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: all_ended(db, [job.id]), "the retried job")
    row = job_row(db, job.id)
    assert row.status == "SUCCEEDED" and row.attempt == 2 and row.step == 40
    lost, ok = attempts_of(db, job.id)
    assert lost.status == "LOST" and "the Ray actor of attempt 1 died" in (lost.error or "")
    assert ok.status == "SUCCEEDED"
    starts = [e for e in read_log(row.storage_uri) if e["event"] == "start"]
    assert [s["attempt"] for s in starts] == [1, 2]
    assert starts[1]["step"] >= 5  # resumed from the checkpoint, not from scratch
    assert starts[0]["run_id"] == starts[1]["run_id"] == row.mlflow_run_id  # one run


@sqlite_only
def test_job_that_no_node_can_hold_waits_without_blocking_others(
    db: Database, alice: UserView
) -> None:
    special = submit_job(
        db,
        alice,
        JobRequest(name="special", priority=9, resources=Resources(custom={"special": 1})),
    )
    normal = submit_job(db, alice, JobRequest(name="normal"))
    with running_scheduler(db):
        wait_until(lambda: status_of(db, normal.id) == "SUCCEEDED", "the normal job")
        waiting = wait_until(lambda: events_of(db, special.id, "waiting"), "a waiting event")
        assert status_of(db, special.id) == "QUEUED"
        cancel_job(db, alice, special.id)
    assert "waiting for a node with these resources to join" in waiting[0].reason
    assert status_of(db, special.id) == "CANCELLED"
