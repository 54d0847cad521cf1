"""The checkpoint an evaluation job scores, resolved from something its caller owns.

An evaluation names its checkpoint by one of the caller's jobs: ``source_job`` (its last
checkpoint; a job still queued or running is waited for and its final checkpoint scored, as
the follow-up evaluations of a pretraining job are), or a ``source_checkpoint`` path inside
one of the caller's job directories. A job the caller may not see is a 404, exactly like
reading it (:func:`orchestrator.service._common.load_job`): no checkpoint of another user's
job can be scored, and whether it exists is not revealed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from orchestrator.errors import FieldError, JobValidationError
from orchestrator.schemas import JobRequest, UserView
from orchestrator.service._common import load_job
from worker.contracts import PRETRAIN, TERMINAL


@dataclass(frozen=True)
class Source:
    """What the new evaluation job stores: a checkpoint now, or the job it waits for."""

    checkpoint: str | None
    depends_on: str | None


def _invalid(field: str, message: str) -> JobValidationError:
    return JobValidationError([FieldError(field=field, message=message, type="source")])


def resolve_source(
    session: Session, user: UserView, request: JobRequest, checkpoint_job: str | None
) -> Source:
    """The source of ``request`` (an eval job) checked against ``user``'s jobs; raises
    :class:`NotFoundError` for a job the user may not see. ``checkpoint_job``: the job whose
    directory ``request.source_checkpoint`` lies in (found by the submit check)."""
    if request.source_checkpoint is not None:
        if checkpoint_job is not None:
            load_job(session, user, checkpoint_job)
        return Source(request.source_checkpoint, None)
    if request.source_job is None:
        return Source(None, None)
    job = load_job(session, user, request.source_job, lock=True)  # its end waits for us
    if job.kind != PRETRAIN:
        raise _invalid(
            "source_job",
            f"job {job.id} is an {job.kind} job: name the pretraining job it evaluated",
        )
    if job.status not in TERMINAL:
        return Source(None, job.id)  # released with its final checkpoint when it succeeds
    if not job.checkpoint_uri:
        raise _invalid(
            "source_job",
            f"job {job.id} ended {job.status} without writing a checkpoint: nothing to score",
        )
    return Source(job.checkpoint_uri, None)
