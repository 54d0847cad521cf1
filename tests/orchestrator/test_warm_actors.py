"""Kept job actors (issue #18): the process of an attempt that ended well runs the next job of
its resource shape; failed attempts, expiry and jobs of other shapes get new processes; an
orchestrator that takes over re-attaches to a reused actor by the name on the attempt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray

from orchestrator import outcomes
from orchestrator.db import Database
from orchestrator.runner import JobRunner, RunnerBusyError, actor_name
from orchestrator.scheduler import Scheduler
from orchestrator.schemas import JobRequest, UserView
from orchestrator.service import submit_job
from orchestrator.specs import actor_options, build_spec
from tests.orchestrator.backends import sqlite_only
from tests.orchestrator.harness import (
    JOB_FN,
    age_heartbeat,
    attempts_of,
    dead_orchestrator,
    events_of,
    fast_settings,
    job_row,
    running_scheduler,
    status_of,
    wait_until,
)
from worker.contracts import Resources

pytestmark = [pytest.mark.usefixtures("ray_conn"), sqlite_only]


def _pid(db: Database, job_id: str, attempt: int = 1) -> int:
    placed = [e for e in events_of(db, job_id, "placed") if e.attempt == attempt]
    assert len(placed) == 1, f"job {job_id} attempt {attempt}: {placed}"
    return int(placed[0].data["pid"])


def _alive(name: str) -> bool:
    try:
        ray.get_actor(name, namespace="dino-test")
    except ValueError:
        return False
    return True


def _one_cpu(db: Database, user: UserView, seed: int, **tags: str) -> str:
    """A 1-CPU job; seeds differ so that no job reuses another's result (same config)."""
    req = JobRequest(
        name=f"seed{seed}",
        config={"train": {"seed": seed}},
        resources=Resources(num_cpus=1),
        tags=tags,
    )
    return submit_job(db, user, req).id


def test_the_next_job_of_the_same_shape_runs_in_the_kept_process(
    db: Database, alice: UserView
) -> None:
    first = _one_cpu(db, alice, 0)
    with running_scheduler(db, warm_actor_idle_s=30.0) as sched:
        wait_until(lambda: status_of(db, first) == "SUCCEEDED", "the first job")
        wait_until(lambda: len(sched.warm.actors) == 1, "the first job's actor to be kept")
        second = _one_cpu(db, alice, 1)
        wait_until(lambda: status_of(db, second) == "SUCCEEDED", "the second job")
    assert _pid(db, second) == _pid(db, first)
    (reused,) = events_of(db, second, "warm_start")
    assert actor_name(first, 1) in reused.reason
    (attempt,) = attempts_of(db, second)
    assert attempt.actor_name == actor_name(first, 1) and attempt.released
    assert job_row(db, second).metrics == job_row(db, first).metrics
    assert not _alive(actor_name(first, 1)), "the scheduler's stop kills what it kept"


def test_a_failed_attempt_gets_a_new_process(db: Database, alice: UserView) -> None:
    req = JobRequest(
        name="flaky",
        resources=Resources(num_cpus=1),
        tags={"t.fail_attempts": "1"},
        max_attempts=2,
    )
    job = submit_job(db, alice, req).id
    with running_scheduler(db, warm_actor_idle_s=30.0):
        wait_until(lambda: status_of(db, job) == "SUCCEEDED", "the retried job")
    first, second = attempts_of(db, job)
    assert first.status == "FAILED" and second.status == "SUCCEEDED"
    assert second.actor_name == actor_name(job, 2) and not events_of(db, job, "warm_start")
    assert _pid(db, job, 2) != _pid(db, job, 1)


def test_a_kept_actor_is_killed_when_its_time_is_up(db: Database, alice: UserView) -> None:
    first = _one_cpu(db, alice, 0)
    with running_scheduler(db, warm_actor_idle_s=0.5) as sched:
        wait_until(lambda: status_of(db, first) == "SUCCEEDED", "the first job")
        wait_until(lambda: not sched.warm.actors, "the kept actor to expire")
        wait_until(lambda: not _alive(actor_name(first, 1)), "the kept actor to die")
        second = _one_cpu(db, alice, 1)
        wait_until(lambda: status_of(db, second) == "SUCCEEDED", "the second job")
    assert _pid(db, second) != _pid(db, first) and not events_of(db, second, "warm_start")


def test_kept_actors_make_way_for_a_job_of_another_shape(db: Database, alice: UserView) -> None:
    small = [_one_cpu(db, alice, i, **{"t.steps": "10"}) for i in range(2)]
    with running_scheduler(db, warm_actor_idle_s=600.0) as sched:
        wait_until(lambda: all(status_of(db, j) == "SUCCEEDED" for j in small), "the 1-CPU jobs")
        wait_until(lambda: len(sched.warm.actors) == 2, "both 1-CPU actors to be kept")
        big = submit_job(
            db,
            alice,
            JobRequest(name="big", config={"train": {"seed": 9}}, resources=Resources(num_cpus=2)),
        ).id  # the whole 2-CPU node: only if the kept actors give their CPUs back
        wait_until(lambda: status_of(db, big) == "SUCCEEDED", "the 2-CPU job")
        assert not sched.warm.actors or len(sched.warm.actors) == 1  # its own, kept now
    assert _pid(db, big) not in {_pid(db, j) for j in small}
    assert not any(_alive(actor_name(j, 1)) for j in small)


def test_a_new_orchestrator_reattaches_to_a_reused_actor_by_its_attempts_name(
    db: Database, alice: UserView, tmp_path: Path
) -> None:
    dead = dead_orchestrator(db)
    hold = tmp_path / "release"
    earlier = submit_job(db, alice, JobRequest(name="earlier"))
    later_req = JobRequest(
        name="later", config={"train": {"seed": 1}}, tags={"t.hold_file": str(hold)}
    )
    later = submit_job(db, alice, later_req)
    # What the dead orchestrator left: "earlier" ran and ended in an actor that it then handed
    # "later" (claimed with that actor's name), before it died.
    assert outcomes.claim(db, earlier.id, dead) is not None
    name = actor_name(earlier.id, 1)
    opts = actor_options(Resources(), name, "dino-test")
    spec = build_spec(job_row(db, earlier.id), "sqlite:///unused.db", None)
    runner = ray.remote(JobRunner).options(**opts).remote(spec.model_dump_json(), JOB_FN)
    wait_until(lambda: ray.get(runner.poll.remote(None, 0.5)).done, "the earlier attempt")
    result = ray.get(runner.poll.remote(None, 0.0)).result
    outcomes.finish(db, earlier.id, 1, dead, fast_settings(), result=result)
    assert outcomes.claim(db, later.id, dead, actor=name) is not None
    later_spec = build_spec(job_row(db, later.id), "sqlite:///unused.db", None)
    ray.get(runner.start.remote(later_spec.model_dump_json(), JOB_FN))
    with running_scheduler(db):
        wait_until(lambda: events_of(db, later.id, "adopted"), "the take-over")
        hold.write_text("go")
        wait_until(lambda: status_of(db, later.id) == "SUCCEEDED", "the later job")
    (adopted,) = events_of(db, later.id, "adopted")
    assert f"re-attached to {name}" in adopted.reason
    assert [(a.status, a.error) for a in attempts_of(db, later.id)] == [("SUCCEEDED", None)]


def _spec_json(db: Database, job_id: str) -> str:
    return build_spec(job_row(db, job_id), "sqlite:///unused.db", None).model_dump_json()


def test_a_runner_takes_the_next_job_only_once_the_last_outcome_is_collected(
    db: Database, alice: UserView, tmp_path: Path
) -> None:
    hold = tmp_path / "release"
    first = submit_job(db, alice, JobRequest(name="a", tags={"t.hold_file": str(hold)})).id
    second = submit_job(db, alice, JobRequest(name="b", config={"train": {"seed": 1}})).id
    runner = JobRunner(_spec_json(db, first), JOB_FN)  # in this process: no Ray needed
    with pytest.raises(RunnerBusyError, match=f"job {first} attempt 1"):
        runner.start(_spec_json(db, second), JOB_FN)  # still running
    hold.write_text("go")
    wait_until(lambda: runner._done, "the first job")
    with pytest.raises(RunnerBusyError):
        runner.start(_spec_json(db, second), JOB_FN)  # ended, but nobody has its outcome
    done = runner.poll(None, 0.0)
    assert done.done and done.result is not None and done.job_id == first
    assert runner.start(_spec_json(db, second), JOB_FN) == os.getpid()
    reply = runner.poll(None, 30.0)
    while not reply.done:
        reply = runner.poll(reply.cursor, 30.0)
    assert (reply.job_id, reply.attempt, reply.result and reply.result.status) == (
        second,
        1,
        "SUCCEEDED",
    )


def test_a_kept_actor_nobody_claims_ends_its_own_process(db: Database, alice: UserView) -> None:
    """The backstop for the kept actors of an orchestrator that died."""
    job = submit_job(db, alice, JobRequest(name="orphan")).id
    name = actor_name(job, 1)
    opts = actor_options(Resources(), name, "dino-test")
    runner = ray.remote(JobRunner).options(**opts).remote(_spec_json(db, job), JOB_FN, 1.0)
    wait_until(lambda: ray.get(runner.poll.remote(None, 0.5)).done, "the job")
    wait_until(lambda: not _alive(name), "the idle actor to end itself", timeout=30)


def test_the_successor_of_a_dead_orchestrator_kills_the_actors_it_kept(
    db: Database, alice: UserView
) -> None:
    job = _one_cpu(db, alice, 0)
    gone = Scheduler(db, fast_settings(warm_actor_idle_s=600.0))
    gone.start()
    wait_until(lambda: (gone.tick(), len(gone.warm.actors) == 1)[1], "the job's actor kept")
    age_heartbeat(db, gone.id)  # it dies here: no stop, its heartbeat ages past the lease
    assert not attempts_of(db, job)[0].released
    with running_scheduler(db):
        wait_until(lambda: not _alive(actor_name(job, 1)), "the kept actor to be killed", 30)
        wait_until(lambda: attempts_of(db, job)[0].released, "its attempt to be released")
