"""Early-stopping decisions at a rung: promote the best combinations, stop the others.

A grid's rung is decided once every pretraining run of it that has not ended is PAUSED (its
attempt trained to its ``until_epoch`` and reported that epoch's metrics). The combinations
paused at the lowest rung are ranked on the mean over their seeds
(:class:`orchestrator.early_stopping.EarlyStopping`), together with every value already
recorded at that rung (ASHA); the best ``max(1, n // reduction_factor)`` of the ``n`` are
promoted. A promoted run is requeued (attempt + 1, ``until_epoch`` = the next rung, or None:
to the end) and resumes from its checkpoint; a stopped one ends STOPPED_EARLY, keeping its
checkpoint and MLflow run, and its eval jobs are cancelled. A combination decided before
(a seed added by an extension) follows its earlier decision.

Everything of one decision is one transaction (the :class:`RungDecision` rows, the moves, the
events), so an orchestrator killed at any point leaves either no decision or all of it, and
the next pass (of any orchestrator) makes it. The unique (grid, combination, rung) row keeps
two orchestrators from deciding the same rung twice.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dino_core.config import build_config
from orchestrator.db import Database
from orchestrator.dependencies import cancel_dependents
from orchestrator.early_stopping import EarlyStopping
from orchestrator.errors import StaleStateError
from orchestrator.models import Grid, Job, RungDecision, utcnow
from orchestrator.states import record_event, transition
from worker.contracts import PAUSED, PRETRAIN, QUEUED, STOPPED_EARLY, TERMINAL

log = logging.getLogger(__name__)


def decide_paused(db: Database) -> int:
    """Decide every grid whose live runs are all paused; the number of runs moved."""
    with db.session() as s:
        grids = s.scalars(
            select(Job.grid_id).where(Job.status == PAUSED, Job.grid_id.is_not(None)).distinct()
        ).all()
    moved = 0
    for grid_id in grids:
        try:
            with db.session() as s:
                moved += decide(s, str(grid_id))
        except (StaleStateError, IntegrityError) as err:  # another orchestrator decided first
            log.info("rung decision of grid %s left to another process: %s", grid_id, err)
    return moved


def _at_rung(s: Session, grid_id: str, rung: int) -> list[RungDecision]:
    stmt = select(RungDecision).where(RungDecision.grid_id == grid_id, RungDecision.rung == rung)
    return list(s.scalars(stmt))


def _metric(job: Job, key: str) -> float | None:
    value = job.result_metrics.get(key)
    return float(value) if isinstance(value, int | float) else None


def decide(s: Session, grid_id: str) -> int:
    """Decide the lowest rung of ``grid_id`` if its live runs are all paused (see module)."""
    grid = s.get(Grid, grid_id)
    if grid is None or grid.early_stopping is None:
        return 0
    es = EarlyStopping.model_validate(grid.early_stopping)
    runs = s.scalars(select(Job).where(Job.grid_id == grid_id, Job.kind == PRETRAIN)).all()
    live = [j for j in runs if j.status not in TERMINAL]
    if not live or any(j.status != PAUSED or j.until_epoch is None for j in live):
        return 0
    rung = min(int(j.until_epoch or 0) for j in live)
    paused: dict[int, list[Job]] = defaultdict(list)
    for j in live:
        if j.until_epoch == rung:
            paused[int(j.combination or 0)].append(j)
    earlier = {d.combination: d for d in _at_rung(s, grid_id, rung)}
    key = es.metric_key(build_config(next(iter(paused.values()))[0].config))
    new: dict[int, tuple[float | None, int]] = {}
    for combo, jobs in paused.items():
        if combo in earlier:
            continue
        values = [v for v in (_metric(j, key) for j in jobs) if v is not None]
        new[combo] = (statistics.fmean(values) if values else None, len(values))
    scored = {c: d.value for c, d in earlier.items()} | {c: v for c, (v, _) in new.items()}
    sign = -1.0 if es.higher_is_better else 1.0
    order = sorted(scored, key=lambda c: (scored[c] is None, sign * (scored[c] or 0.0), c))
    kept = max(1, len(order) // es.reduction_factor)
    now = utcnow()
    for combo, (value, n) in new.items():
        rank = order.index(combo) + 1
        s.add(
            RungDecision(
                grid_id=grid_id,
                combination=combo,
                rung=rung,
                metric=key,
                value=value,
                n_seeds=n,
                rank=rank,
                cohort=len(order),
                kept=kept,
                promoted=rank <= kept,
                decided_at=now,
            )
        )
        shown = "not measured" if value is None else f"{value:.4g}"
        record_event(
            s,
            "rung_decision",
            f"rung epoch {rung}: combination {combo} {key} mean {shown} over {n} seed(s) ranks "
            f"{rank} of {len(order)}; the best {kept} train on: "
            + ("promoted" if rank <= kept else "stopped early"),
            grid_id=grid_id,
            data={
                "combination": combo,
                "rung": rung,
                "metric": key,
                "value": value,
                "rank": rank,
                "cohort": len(order),
                "kept": kept,
            },
        )
    s.flush()
    decided = {d.combination: d for d in _at_rung(s, grid_id, rung)}
    for combo, jobs in paused.items():
        for job in jobs:
            _move(s, job, es, decided[combo])
    return sum(len(j) for j in paused.values())


def _move(s: Session, job: Job, es: EarlyStopping, d: RungDecision) -> None:
    shown = "not measured" if d.value is None else f"{d.value:.4g}"
    why = (
        f"rung epoch {d.rung}: {d.metric} seed mean {shown} ranked {d.rank} of {d.cohort} "
        f"(the best {d.kept} train on)"
    )
    if d.promoted:
        epochs = int(job.config.get("train", {}).get("epochs", 0))
        until = es.next_rung(epochs, d.rung)
        to = f"epoch {until}" if until is not None else "the last epoch"
        transition(
            s,
            job,
            QUEUED,
            f"{why}: promoted; attempt {job.attempt + 1} resumes from the checkpoint to {to}",
            values={
                "attempt": job.attempt + 1,
                "until_epoch": until,
                "claimed_by": None,
                "not_before": None,
                "queued_at": utcnow(),
            },
        )
        return
    transition(s, job, STOPPED_EARLY, f"{why}: stopped early", data={"rung": d.rung})
    cancel_dependents(s, job, f"pretraining job {job.id} was stopped early at epoch {d.rung}")
