"""The job state machine on a real database: allowed moves, refusals, events, races."""

from __future__ import annotations

import itertools

import pytest

from orchestrator.db import Database
from orchestrator.errors import IllegalTransitionError, StaleStateError
from orchestrator.models import Event, Job
from orchestrator.schemas import JobRequest, UserView
from orchestrator.service import submit_job
from orchestrator.states import ALLOWED, check_transition, transition
from worker.contracts import CANCELLED, QUEUED, RUNNING, STATES, SUCCEEDED, TERMINAL

EXPECTED = {
    (QUEUED, RUNNING),
    (QUEUED, CANCELLED),
    (RUNNING, QUEUED),
    (RUNNING, SUCCEEDED),
    (RUNNING, "FAILED"),
    (RUNNING, CANCELLED),
    (RUNNING, "COLLAPSED"),
    (RUNNING, "DIVERGED"),
    (RUNNING, "PAUSED"),  # early stopping: the attempt reached a rung
    ("PAUSED", QUEUED),  # promoted
    ("PAUSED", "STOPPED_EARLY"),
    ("PAUSED", CANCELLED),
}


def test_exactly_the_documented_transitions_are_allowed() -> None:
    allowed = set()
    for a, b in itertools.product(STATES, STATES):
        try:
            check_transition("job-x", a, b)
            allowed.add((a, b))
        except IllegalTransitionError as err:
            assert err.from_status == a and err.to_status == b
            assert f"{a} -> {b}" in str(err)
    assert allowed == EXPECTED
    assert all(s not in ALLOWED for s in TERMINAL)


def test_refusal_names_from_to_and_what_is_allowed() -> None:
    with pytest.raises(IllegalTransitionError) as err:
        check_transition("job-1", SUCCEEDED, RUNNING)
    assert "job job-1: illegal transition SUCCEEDED -> RUNNING" in str(err.value)
    assert "terminal state" in str(err.value)
    with pytest.raises(IllegalTransitionError, match="allowed from QUEUED: CANCELLED, RUNNING"):
        check_transition("job-1", QUEUED, SUCCEEDED)


def _job(db: Database, user: UserView) -> Job:
    view = submit_job(db, user, JobRequest(config={"model": {"depth": 1}}))
    with db.session() as s:
        job = s.get(Job, view.id)
        assert job is not None
        return job


def test_transition_updates_row_and_logs_event_with_reason(db: Database, alice: UserView) -> None:
    job = _job(db, alice)
    with db.session() as s:
        transition(s, job, RUNNING, "claimed for the test")
    with db.session() as s:
        transition(s, job, SUCCEEDED, "done", values={"result_metrics": {"loss": 1.5}})
    with db.session() as s:
        row = s.get(Job, job.id)
        assert row is not None
        assert row.status == SUCCEEDED and row.status_reason == "done"
        assert row.result_metrics == {"loss": 1.5}
        assert row.finished_at is not None
        events = s.query(Event).filter(Event.job_id == job.id).order_by(Event.id).all()
    moves = [(e.kind, e.from_status, e.to_status, e.reason) for e in events]
    assert moves == [
        ("submitted", None, QUEUED, "submitted by alice"),
        ("transition", QUEUED, RUNNING, "claimed for the test"),
        ("transition", RUNNING, SUCCEEDED, "done"),
    ]


def test_illegal_transition_changes_nothing(db: Database, alice: UserView) -> None:
    job = _job(db, alice)
    with pytest.raises(IllegalTransitionError), db.session() as s:
        transition(s, job, SUCCEEDED, "skipping RUNNING")
    with db.session() as s:
        row = s.get(Job, job.id)
        assert row is not None and row.status == QUEUED
        assert s.query(Event).filter(Event.kind == "transition").count() == 0


def test_second_writer_with_stale_view_is_refused(db: Database, alice: UserView) -> None:
    first = _job(db, alice)
    second = _job(db, alice)
    with db.session() as s:
        stale = s.get(Job, first.id)
    assert stale is not None
    with db.session() as s:
        transition(s, first, RUNNING, "orchestrator A claims")
    with pytest.raises(StaleStateError, match="no longer QUEUED"), db.session() as s:
        transition(s, stale, RUNNING, "orchestrator B claims too")
    with db.session() as s:
        claims = s.query(Event).filter(Event.job_id == first.id, Event.to_status == RUNNING)
        assert claims.count() == 1
        other = s.get(Job, second.id)
        assert other is not None and other.status == QUEUED
