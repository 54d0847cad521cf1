"""Submitting grids, reading them back, their summary table, cancelling them."""

from __future__ import annotations

from collections import Counter
from typing import TypedDict, Unpack

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dino_core.config import EvalConfig
from dino_core.eval.baseline_key import baseline_key
from orchestrator.capacity import Bundle
from orchestrator.db import Database
from orchestrator.errors import StaleStateError
from orchestrator.grid_expand import DEFAULT_MAX_COMBINATIONS
from orchestrator.models import Grid, Job, RungDecision, new_id, utcnow
from orchestrator.schemas import EvalCell, GridPlanView, GridRequest, GridRow, GridView, UserView
from orchestrator.service._common import job_view, load_grid, request_hash, scoped
from orchestrator.service.grid_jobs import add_grid_jobs
from orchestrator.service.idempotency import run_idempotent
from orchestrator.service.jobs import MAX_PAGE, cancel_in_session
from orchestrator.service.runnable import MemoryPolicy, PathPolicy
from orchestrator.service.submit_check import check_grid
from orchestrator.states import record_event
from worker.contracts import (
    BASELINES,
    GRID_FINISHED,
    PAUSED,
    PRETRAIN,
    QUEUED,
    RUNNING,
    STOPPED_EARLY,
    SUCCEEDED,
    TERMINAL,
    GridStatus,
)

PAPER_KNN_K: int = EvalConfig.model_fields["knn_k"].default


def experiment_for_grid(name: str) -> str:
    """MLflow experiment of a grid: ``dino/<grid name>``."""
    return f"dino/{name}"


def plan_grid(
    request: GridRequest,
    *,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
    paths: PathPolicy | None = None,
    memory: MemoryPolicy | None = None,
    cluster: list[Bundle] | None = None,
) -> GridPlanView:
    """What :func:`submit_grid` would queue (a dry run): stores nothing.

    Raises :class:`GridValidationError` listing every invalid field.
    """
    plan = check_grid(
        request, max_combinations=max_combinations, paths=paths, memory=memory, cluster=cluster
    )
    return plan.view()


class GridSubmitOptions(TypedDict, total=False):
    """The keyword options of :func:`submit_grid_with_replay`."""

    idempotency_key: str | None
    max_combinations: int
    paths: PathPolicy | None
    memory: MemoryPolicy | None
    cluster: list[Bundle] | None


def submit_grid(
    db: Database, user: UserView, request: GridRequest, **options: Unpack[GridSubmitOptions]
) -> GridView:
    """Check the request once (:func:`check_grid`), then store the grid and all its jobs.

    Raises :class:`GridValidationError` (every invalid field: combination, cap, options,
    paths outside ``paths``) before anything is stored.
    """
    return submit_grid_with_replay(db, user, request, **options)[0]


def submit_grid_with_replay(
    db: Database,
    user: UserView,
    request: GridRequest,
    *,
    idempotency_key: str | None = None,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
    paths: PathPolicy | None = None,
    memory: MemoryPolicy | None = None,
    cluster: list[Bundle] | None = None,
) -> tuple[GridView, bool]:
    """:func:`submit_grid`, and whether the answer replays an earlier request's grid
    (``Idempotent-Replayed``)."""
    plan = check_grid(
        request, max_combinations=max_combinations, paths=paths, memory=memory, cluster=cluster
    )
    combos = plan.combinations
    es = request.early_stopping

    def create(session: Session) -> str:
        now = utcnow()
        grid = Grid(
            id=new_id("grid"),
            name=request.name,
            owner_id=user.id,
            base_config=request.base_config,
            axes=request.axes,
            overrides=plan.override_sets,
            seeds=list(plan.seeds),
            early_stopping=es.model_dump(mode="json") if es is not None else None,
            evals=list(request.evals),
            request=request.model_dump(mode="json"),
            n_combinations=len(combos),
            mlflow_experiment=experiment_for_grid(request.name),
            created_at=now,
        )
        session.add(grid)
        session.flush()
        seeds = f" x {len(plan.seeds)} seeds" if plan.seeds else ""
        record_event(
            session,
            "submitted",
            f"grid of {len(combos)} combination(s){seeds} submitted by {user.name}",
            grid_id=grid.id,
            data={
                "combinations": len(combos),
                "seeds": list(plan.seeds),
                "evals": list(request.evals),
            },
        )
        add_grid_jobs(session, grid, request, plan, now)
        return grid.id

    made = run_idempotent(db, user, idempotency_key, "grid", request_hash(request), create)
    return get_grid(db, user, made.object_id), made.replayed


def _status(counts: Counter[str]) -> GridStatus:
    total = sum(counts.values())
    ended = sum(n for s, n in counts.items() if s in TERMINAL)
    if total and ended == total:
        return SUCCEEDED if counts[SUCCEEDED] == total else GRID_FINISHED
    if counts[QUEUED] == total:
        return QUEUED
    return RUNNING


def _view(grid: Grid, counts: Counter[str], jobs: list[Job] | None = None) -> GridView:
    data = {c.key: getattr(grid, c.key) for c in Grid.__table__.columns}
    data.update(status=_status(counts), counts=dict(counts), jobs=[])
    if jobs is not None:
        data["jobs"] = [job_view(j) for j in jobs]
    return GridView.model_validate(data)


def _grid_jobs(session: Session, grid_id: str) -> list[Job]:
    stmt = select(Job).where(Job.grid_id == grid_id).order_by(Job.combination, Job.created_at)
    jobs = list(session.scalars(stmt))
    return sorted(jobs, key=_job_order)


def _job_order(j: Job) -> tuple[bool, int, bool, int, str]:
    """Baseline jobs first; then per combination its pretraining runs by seed, then evals."""
    seed = int(j.config.get("train", {}).get("seed", 0))
    return (j.combination is not None, j.combination or 0, j.depends_on is not None, seed, j.kind)


def get_grid(db: Database, user: UserView, grid_id: str) -> GridView:
    """The grid with all its jobs (pretraining job of each combination first)."""
    with db.session() as s:
        grid = load_grid(s, user, grid_id)
        jobs = _grid_jobs(s, grid_id)
        return _view(grid, Counter(j.status for j in jobs), jobs)


def list_grids(
    db: Database, user: UserView, *, limit: int = 100, offset: int = 0
) -> list[GridView]:
    """Newest first, with job counts by state (``jobs`` left empty)."""
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValueError(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    stmt = scoped(select(Grid), user, Grid.owner_id)
    stmt = stmt.order_by(Grid.created_at.desc(), Grid.id).limit(limit).offset(offset)
    with db.session() as s:
        grids = list(s.scalars(stmt))
        counts: dict[str, Counter[str]] = {g.id: Counter() for g in grids}
        rows = s.execute(
            select(Job.grid_id, Job.status, func.count())
            .where(Job.grid_id.in_(list(counts)))
            .group_by(Job.grid_id, Job.status)
        )
        for grid_id, status, n in rows:
            counts[str(grid_id)][status] = int(n)
        return [_view(g, counts[g.id]) for g in grids]


def _cell(job: Job) -> EvalCell:
    return EvalCell(
        job_id=job.id, status=job.status, metrics=job.result_metrics, options=job.eval_options
    )


def summary_rows(session: Session, grid_id: str) -> list[GridRow]:
    """One row per pretraining run (a combination at one seed): axis values, status, final
    metrics, its eval results, the grid's baseline job for its architecture, collapse."""
    jobs = _grid_jobs(session, grid_id)
    stops = {
        d.combination: d
        for d in session.scalars(
            select(RungDecision).where(
                RungDecision.grid_id == grid_id, RungDecision.promoted.is_(False)
            )
        )
    }
    evals: dict[str, dict[str, EvalCell]] = {}
    baselines: dict[str, EvalCell] = {}
    for j in jobs:
        if j.depends_on is not None:
            evals.setdefault(j.depends_on, {})[j.kind] = _cell(j)
        elif j.kind == BASELINES:  # an extended grid adds one for its new seeds: merged
            key = baseline_key(j.config)
            cell = _cell(j)
            if key in baselines:
                merged = {**baselines[key].metrics, **cell.metrics}
                cell = baselines[key].model_copy(update={"metrics": merged})
            baselines[key] = cell
    rows = []
    for j in jobs:
        if j.kind != PRETRAIN or j.combination is None:
            continue
        stop = stops.get(j.combination) if j.status == STOPPED_EARLY else None
        rows.append(
            GridRow(
                combination=j.combination,
                seed=int(j.config.get("train", {}).get("seed", 0)),
                job_id=j.id,
                axis_values=j.axis_values,
                status=j.status,
                metrics=j.result_metrics or j.metrics,
                evals=evals.get(j.id, {}),
                baseline=baselines.get(baseline_key(j.config)),
                collapsed=j.collapsed,
                collapse_kind=j.collapse_kind,
                mlflow_run_id=j.mlflow_run_id,
                step=j.step,
                total_steps=j.total_steps,
                knn_k=int(j.config.get("eval", {}).get("knn_k", PAPER_KNN_K)),
                stopped_at_epoch=stop.rung if stop else None,
                stop_metric=stop.metric if stop else None,
                stop_value=stop.value if stop else None,
                reused_from=j.reused_from,
            )
        )
    return rows


def grid_summary(db: Database, user: UserView, grid_id: str) -> list[GridRow]:
    """:func:`summary_rows` of a grid the user may see."""
    with db.session() as s:
        load_grid(s, user, grid_id)
        return summary_rows(s, grid_id)


def cancel_grid(db: Database, user: UserView, grid_id: str, reason: str | None = None) -> GridView:
    """Cancel every job of the grid that has not ended (running ones via the orchestrator)."""
    why = reason or f"grid {grid_id} cancelled by {user.name}"
    for _ in range(5):
        try:
            with db.session() as s:
                load_grid(s, user, grid_id)
                live = s.scalars(
                    select(Job)
                    .where(Job.grid_id == grid_id, Job.status.in_([QUEUED, RUNNING, PAUSED]))
                    .order_by(Job.depends_on.is_not(None))
                    .with_for_update()
                ).all()
                for job in live:
                    if job.status in (QUEUED, RUNNING, PAUSED):
                        cancel_in_session(s, job, why)
            return get_grid(db, user, grid_id)
        except StaleStateError:
            continue
    raise StaleStateError(f"grid {grid_id} kept changing while being cancelled: try again")
