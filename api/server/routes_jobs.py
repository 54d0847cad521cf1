"""``/v1/jobs``: submit, list, read and cancel jobs (owner-scoped; admins see all)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response

from api.server.auth import CurrentUser
from api.server.deps import (
    AUTH_ERRORS,
    CONFLICT,
    ID_MAX,
    NOT_FOUND,
    Db,
    FixedNodes,
    IdempotencyKey,
    Limit,
    Memory,
    Offset,
    Paths,
)
from api.server.deps import Settings as SettingsDep
from api.server.schemas import (
    CancelRequest,
    JobDetail,
    JobPage,
    JobSubmission,
    JobSummary,
    Progress,
)
from orchestrator import service
from orchestrator.schemas import JobView
from worker.contracts import JobKind, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
JobId = Annotated[str, Path(min_length=1, max_length=ID_MAX, description="job id")]


@router.post(
    "",
    status_code=201,
    response_model=JobView,
    responses={**AUTH_ERRORS, **CONFLICT, **NOT_FOUND},
    summary="Submit one pretraining or evaluation job",
)
def submit_job(
    body: JobSubmission,
    user: CurrentUser,
    db: Db,
    paths: Paths,
    memory: Memory,
    nodes: FixedNodes,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobView:
    """Queue a job. With ``Idempotency-Key`` a retry returns the first job (same id and
    status code); the same key with a different body is a 409. An evaluation's
    ``source_job`` / ``source_checkpoint`` must be one of the caller's jobs (else 404)."""
    job, again = service.submit_job_with_replay(
        db,
        user,
        body,
        idempotency_key=idempotency_key,
        paths=paths,
        memory=memory,
        cluster=nodes,
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if again:
        response.headers["Idempotent-Replayed"] = "true"
    return job


@router.get("", response_model=JobPage, responses=AUTH_ERRORS, summary="List jobs")
def list_jobs(
    user: CurrentUser,
    db: Db,
    status: JobStatus | None = None,
    grid_id: Annotated[str | None, Query(max_length=ID_MAX)] = None,
    kind: JobKind | None = None,
    owner: Annotated[str | None, Query(max_length=100, description="user name")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JobPage:
    """Newest first; users see their own jobs, admins everyone's (``owner`` narrows)."""
    owner_id = None
    if owner is not None:
        found = service.get_user_by_name(db, owner)
        if found is None:
            return JobPage(items=[], limit=limit, offset=offset, next_offset=None)
        owner_id = found.id
    jobs = service.list_jobs(
        db,
        user,
        status=status,
        grid_id=grid_id,
        kind=kind,
        owner_id=owner_id,
        limit=limit,
        offset=offset,
    )
    items = [JobSummary.model_validate(j, from_attributes=True) for j in jobs]
    more = offset + limit if len(items) == limit else None
    return JobPage(items=items, limit=limit, offset=offset, next_offset=more)


@router.get(
    "/{job_id}",
    response_model=JobDetail,
    responses={**AUTH_ERRORS, **NOT_FOUND},
    summary="A job with attempts, events, progress and links",
)
def get_job(
    job_id: JobId,
    user: CurrentUser,
    db: Db,
    settings: SettingsDep,
    events_after: Annotated[int, Query(ge=0, le=2**62, description="event id")] = 0,
) -> JobDetail:
    """Status, attempts, events (oldest first after ``events_after``), progress, latest
    metrics, the MLflow run link and the checkpoint URI."""
    job = service.get_job(db, user, job_id)
    attempts = service.job_attempts(db, user, job_id)
    events = service.job_events(
        db, user, job_id, after_id=events_after, limit=settings.events_per_job
    )
    fraction = None
    if job.step is not None and job.total_steps:
        fraction = min(max(job.step / job.total_steps, 0.0), 1.0)
    progress = Progress(
        step=job.step, total_steps=job.total_steps, epoch=job.epoch, fraction=fraction
    )
    url = None
    if job.mlflow_run_id:
        url = f"{settings.mlflow_ui_url.rstrip('/')}/#/runs/{job.mlflow_run_id}"
    return JobDetail(
        **job.model_dump(),
        attempts=attempts,
        events=events,
        progress=progress,
        mlflow_run_url=url,
    )


@router.post(
    "/{job_id}/cancel",
    response_model=JobView,
    responses={**AUTH_ERRORS, **NOT_FOUND, **CONFLICT},
    summary="Cancel a job",
)
def cancel_job(
    job_id: JobId,
    user: CurrentUser,
    db: Db,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> JobView:
    """A queued job is cancelled at once (with the evaluations waiting on it); a running one
    is stopped by the orchestrator (``cancel_requested`` until then). Ended jobs: 409."""
    reason = body.reason if body is not None else None
    return service.cancel_job(db, user, job_id, reason)
