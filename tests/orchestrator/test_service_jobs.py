"""Submitting, listing, cancelling jobs; owner scoping; idempotency keys."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from dino_core.config import ConfigError
from orchestrator.db import Database
from orchestrator.errors import IdempotencyConflictError, IllegalTransitionError, NotFoundError
from orchestrator.models import Job
from orchestrator.schemas import JobRequest, UserView
from orchestrator.service import (
    cancel_job,
    get_job,
    job_events,
    list_jobs,
    lookup_idempotency,
    submit_job,
)
from orchestrator.states import transition
from worker.contracts import RUNNING, SUCCEEDED


def test_submit_validates_and_resolves_the_config(db: Database, alice: UserView) -> None:
    job = submit_job(
        db,
        alice,
        JobRequest(name="t", config={"model": {"depth": 2}}, overrides={"loss.teacher_temp": 0.05}),
    )
    assert job.status == "QUEUED" and job.attempt == 1 and job.kind == "pretrain"
    assert job.config["model"]["depth"] == 2
    assert job.config["loss"]["teacher_temp"] == 0.05
    assert job.config["head"]["out_dim"] == 65536  # defaults filled in
    assert job.storage_uri.endswith(f"/{job.id}")
    assert job.mlflow_experiment == "dino"
    with pytest.raises(ConfigError, match=r"loss\.teacher_temp"):
        submit_job(db, alice, JobRequest(overrides=["loss.teacher_temp=-1"]))


def test_request_rules() -> None:
    with pytest.raises(ValidationError, match="needs exactly one of source_job"):
        JobRequest(kind="eval_knn")
    with pytest.raises(ValidationError, match="follow a pretrain job only"):
        JobRequest(kind="eval_knn", source_checkpoint="/c.pt", evals=["eval_attention"])
    with pytest.raises(ValidationError, match="not in evals"):
        JobRequest(evals=["eval_knn"], evals_options={"eval_linear": {}})
    with pytest.raises(ValidationError, match="extra"):
        JobRequest.model_validate({"nmae": "typo"})


def test_users_see_their_own_jobs_and_admins_see_all(
    db: Database, alice: UserView, bob: UserView, admin: UserView
) -> None:
    a = submit_job(db, alice, JobRequest(name="a"))
    b = submit_job(db, bob, JobRequest(name="b"))
    assert [j.id for j in list_jobs(db, alice)] == [a.id]
    assert [j.id for j in list_jobs(db, bob)] == [b.id]
    assert {j.id for j in list_jobs(db, admin)} == {a.id, b.id}
    assert [j.id for j in list_jobs(db, admin, owner_id=bob.id)] == [b.id]
    with pytest.raises(NotFoundError):
        get_job(db, alice, b.id)
    with pytest.raises(NotFoundError):
        cancel_job(db, alice, b.id)
    assert get_job(db, admin, a.id).owner_id == alice.id
    assert [j.name for j in list_jobs(db, admin, status="QUEUED", limit=1)] == ["b"]
    with pytest.raises(ValueError, match="status 'DONE'"):
        list_jobs(db, admin, status="DONE")


def test_follow_up_evals_wait_on_the_pretraining_job(db: Database, alice: UserView) -> None:
    req = JobRequest(evals=["eval_knn", "eval_linear"], evals_options={"eval_knn": {"ks": [5]}})
    job = submit_job(db, alice, req)
    evals = [j for j in list_jobs(db, alice) if j.depends_on == job.id]
    assert sorted(j.kind for j in evals) == ["eval_knn", "eval_linear"]
    knn = next(j for j in evals if j.kind == "eval_knn")
    assert knn.source_checkpoint is None and knn.config_hash == job.config_hash
    with db.session() as s:
        assert s.get(Job, knn.id).eval_options == {"ks": [5]}  # type: ignore[union-attr]


def test_eval_options_are_checked_against_the_runner_at_submit(
    db: Database, alice: UserView
) -> None:
    req = JobRequest(evals=["eval_knn"], evals_options={"eval_knn": {"k": 5}})
    with pytest.raises(ConfigError, match=r"evals_options\.eval_knn\.k: .*ks"):
        submit_job(db, alice, req)
    req = JobRequest(kind="eval_linear", source_checkpoint="/c.pt", eval_options={"epochs": 0})
    with pytest.raises(ConfigError, match=r"eval_options\.epochs"):
        submit_job(db, alice, req)
    assert list_jobs(db, alice) == []


def test_cancel_queued_job_cancels_its_evals_with_reasons(db: Database, alice: UserView) -> None:
    job = submit_job(db, alice, JobRequest(evals=["eval_knn"]))
    out = cancel_job(db, alice, job.id, reason="not needed")
    assert out.status == "CANCELLED" and out.status_reason == "not needed"
    knn = next(j for j in list_jobs(db, alice) if j.depends_on == job.id)
    assert knn.status == "CANCELLED"
    assert knn.status_reason == f"pretraining job {job.id} was cancelled"
    assert cancel_job(db, alice, job.id).status == "CANCELLED"  # again: no change
    events = [(e.kind, e.to_status, e.reason) for e in job_events(db, alice, job.id)]
    assert events[-1] == ("transition", "CANCELLED", "not needed")


def test_cancel_running_job_only_flags_it(db: Database, alice: UserView) -> None:
    view = submit_job(db, alice, JobRequest())
    with db.session() as s:
        row = s.get(Job, view.id)
        assert row is not None
        transition(s, row, RUNNING, "test claim")
    out = cancel_job(db, alice, view.id)
    assert out.status == RUNNING and out.cancel_requested
    assert job_events(db, alice, view.id)[-1].kind == "cancel_requested"


def test_cancel_finished_job_is_an_illegal_transition(db: Database, alice: UserView) -> None:
    view = submit_job(db, alice, JobRequest())
    with db.session() as s:
        row = s.get(Job, view.id)
        assert row is not None
        transition(s, row, RUNNING, "claim")
        transition(s, row, SUCCEEDED, "done")
    with pytest.raises(IllegalTransitionError, match="SUCCEEDED -> CANCELLED"):
        cancel_job(db, alice, view.id)


def test_idempotency_key_returns_the_first_job(
    db: Database, alice: UserView, bob: UserView
) -> None:
    req = JobRequest(name="once")
    first = submit_job(db, alice, req, idempotency_key="k-1")
    again = submit_job(db, alice, req, idempotency_key="k-1")
    assert again.id == first.id
    assert len(list_jobs(db, alice)) == 1
    rec = lookup_idempotency(db, alice, "k-1")
    assert rec is not None and rec.object_id == first.id and rec.kind == "job"
    assert lookup_idempotency(db, bob, "k-1") is None
    assert submit_job(db, bob, req, idempotency_key="k-1").id != first.id  # keys are per user
    with pytest.raises(IdempotencyConflictError, match="different job request"):
        submit_job(db, alice, JobRequest(name="other"), idempotency_key="k-1")


def test_concurrent_retries_with_one_key_create_one_job(db: Database, alice: UserView) -> None:
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def submit() -> None:
        try:
            barrier.wait()
            ids.append(submit_job(db, alice, JobRequest(name="r"), idempotency_key="same").id)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ids) == 4 and len(set(ids)) == 1
    assert len(list_jobs(db, alice)) == 1
