"""``extend``: more values of a grid's axes, or more seeds; only the new runs are queued.

The grid keeps its base config, its axes and its override sets; an extension adds values to
axes it has and seeds to a grid that has seeds. Asking for anything else (another base
config, a new axis, a value or seed already there, seeds on a grid run without them) is a
:class:`ConflictError` (HTTP 409) naming it; the extended grid is checked like a new one
(:func:`check_grid`, HTTP 422 naming the field). Nothing is stored on error. New
combinations are numbered after the existing ones, runs that exist are not touched, and new
seeds get a baselines job of their own; the summary covers everything.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dino_core.eval.baseline_key import baseline_key
from orchestrator.db import Database
from orchestrator.errors import ConflictError, FieldError, GridValidationError
from orchestrator.grid_expand import DEFAULT_MAX_COMBINATIONS
from orchestrator.models import Grid, Job, utcnow
from orchestrator.schemas import GridExtension, GridRequest, GridView, UserView
from orchestrator.service._common import load_grid
from orchestrator.service.grid_jobs import Existing, add_grid_jobs, values_key
from orchestrator.service.grids import get_grid
from orchestrator.service.runnable import MemoryPolicy, PathPolicy
from orchestrator.service.submit_check import check_grid
from orchestrator.states import record_event
from worker.contracts import BASELINES, PRETRAIN


def _conflicts(grid: Grid, stored: dict[str, Any], ext: GridExtension) -> list[str]:
    reasons = []
    if ext.base_config is not None and ext.base_config != stored.get("base_config", {}):
        reasons.append(
            "base_config differs from the grid's: an extension keeps the base config "
            "(submit a new grid to change it)"
        )
    axes: dict[str, list[Any]] = stored.get("axes", {})
    for key, values in ext.axes.items():
        if key not in axes:
            reasons.append(
                f"axes.{key} is not an axis of grid {grid.id} (its axes: "
                f"{', '.join(axes) or 'none'}): a new axis changes every combination, "
                "submit a new grid"
            )
            continue
        for value in values:
            if value in axes[key]:
                reasons.append(f"axes.{key}: {value!r} is already a value of this axis")
    if ext.seeds and not grid.seeds:
        reasons.append(
            f"grid {grid.id} runs each combination once (no seeds): seeds cannot be added"
        )
    reasons += [f"seeds: {s} is already a seed of this grid" for s in ext.seeds if s in grid.seeds]
    return reasons


def _extended(stored: dict[str, Any], ext: GridExtension) -> GridRequest:
    axes = {k: list(v) for k, v in stored.get("axes", {}).items()}
    for key, values in ext.axes.items():
        axes[key] += list(values)
    seeds = stored.get("seeds")
    if seeds is not None:
        seeds = [*seeds, *ext.seeds]
    return GridRequest.model_validate({**stored, "axes": axes, "seeds": seeds})


def _existing(jobs: list[Job]) -> Existing:
    have = Existing()
    for j in jobs:
        if j.kind == PRETRAIN and j.combination is not None:
            key = values_key(j.axis_values)
            have.index[key] = j.combination
            have.runs.add((key, int(j.config.get("train", {}).get("seed", 0))))
        elif j.kind == BASELINES:
            seeds = {int(s) for s in j.eval_options.get("seeds", [])}
            have.baseline_seeds.setdefault(baseline_key(j.config), set()).update(seeds)
    return have


def extend_grid(
    db: Database,
    user: UserView,
    grid_id: str,
    ext: GridExtension,
    *,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
    paths: PathPolicy | None = None,
    memory: MemoryPolicy | None = None,
) -> GridView:
    """Add ``ext``'s axis values and seeds to the grid and queue only the new runs."""
    with db.session() as s:
        grid = load_grid(s, user, grid_id)
        stored = grid.request
        if stored is None:
            raise ConflictError(
                f"grid {grid_id} was stored before grids could be extended: submit a new grid"
            )
        reasons = _conflicts(grid, stored, ext)
    if reasons:
        raise ConflictError(f"grid {grid_id} cannot be extended: " + "; ".join(reasons))
    if not ext.axes and not ext.seeds:
        message = "nothing to add: give more values of the grid's axes, or more seeds"
        raise GridValidationError([FieldError(field="axes", message=message)])
    request = _extended(stored, ext)
    plan = check_grid(request, max_combinations=max_combinations, paths=paths, memory=memory)
    with db.session() as s:
        locked = s.get(Grid, grid_id, with_for_update=True)
        if locked is None or locked.request != stored:  # another extension came first
            raise ConflictError(f"grid {grid_id} changed while being extended: try again")
        jobs = list(s.scalars(select(Job).where(Job.grid_id == grid_id)))
        added = add_grid_jobs(s, locked, request, plan, utcnow(), _existing(jobs))
        locked.axes = request.axes
        locked.seeds = list(plan.seeds)
        locked.n_combinations = len(plan.combinations)
        locked.request = request.model_dump(mode="json")
        locked.finished_at = None
        record_event(
            s,
            "extended",
            f"grid extended by {user.name}: {added} new run(s)",
            grid_id=grid_id,
            data={"axes": ext.axes, "seeds": list(ext.seeds), "new_runs": added},
        )
    return get_grid(db, user, grid_id)
