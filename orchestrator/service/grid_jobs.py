"""The jobs of a grid plan: one baselines job per architecture and data, a pretraining job
per run (combination x seed) and its eval jobs; for an extended grid, only what is new."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.models import Grid
from orchestrator.schemas import GridRequest
from orchestrator.service._build import add_evals, add_job, eval_resources
from orchestrator.service.submit_check import GridPlan
from worker.contracts import BASELINES, PRETRAIN


def values_key(values: Mapping[str, Any]) -> str:
    """A combination's identity inside its grid: its axis and override values as JSON."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"))


@dataclass
class Existing:
    """What a grid already has: each combination's index by :func:`values_key`, the runs
    ``(values key, seed)`` and the baseline seeds scored per baseline key."""

    index: dict[str, int] = field(default_factory=dict)
    runs: set[tuple[str, int]] = field(default_factory=set)
    baseline_seeds: dict[str, set[int]] = field(default_factory=dict)


def add_grid_jobs(
    session: Session,
    grid: Grid,
    request: GridRequest,
    plan: GridPlan,
    now: datetime,
    existing: Existing | None = None,
) -> int:
    """Add the jobs of ``plan`` that ``existing`` lacks; returns the number of new runs.
    New combinations are numbered after the existing ones."""
    have = existing or Existing()
    evals_res = request.eval_resources or eval_resources(request.resources)
    es = request.early_stopping
    groups = [
        dataclasses.replace(
            g, seeds=[s for s in g.seeds if s not in have.baseline_seeds.get(g.key, set())]
        )
        for g in plan.baseline_groups()
    ]
    groups = [g for g in groups if g.seeds]
    for n, group in enumerate(groups):
        name = f"{request.name}/baselines" + (f"/{n}" if len(groups) > 1 else "")
        add_job(
            session,
            owner_id=grid.owner_id,
            kind=BASELINES,
            name=name,
            config=group.config,
            resources=evals_res,
            priority=request.priority,
            max_attempts=request.max_attempts,
            experiment=grid.mlflow_experiment,
            now=now,
            reason=f"grid {grid.id}: k-NN of random init (seeds {group.seeds}) and raw "
            "pixels, once for every run of this architecture and data",
            eval_options=plan.baseline_options(group),
            tags=request.tags,
            grid_id=grid.id,
            axis_values=group.values,
            reuse=request.reuse,
        )
    next_index = max(have.index.values(), default=-1) + 1
    added = 0
    for combo, config in plan.runs():
        key = values_key(combo.values)
        if (key, config.train.seed) in have.runs:
            continue
        if key not in have.index:
            have.index[key] = combo.index if existing is None else next_index
            next_index = max(next_index, have.index[key]) + 1
        index = have.index[key]
        seed = f"/seed{config.train.seed}" if plan.seeds else ""
        pretrain = add_job(
            session,
            owner_id=grid.owner_id,
            kind=PRETRAIN,
            name=f"{request.name}/{index}{seed}",
            config=config,
            resources=request.resources,
            priority=request.priority,
            max_attempts=request.max_attempts,
            experiment=grid.mlflow_experiment,
            now=now,
            reason=f"grid {grid.id} combination {index}{seed}: {combo.label()}",
            tags=request.tags,
            grid_id=grid.id,
            combination=index,
            axis_values=combo.values,
            until_epoch=es.next_rung(config.train.epochs, None) if es is not None else None,
            reuse=request.reuse,
        )
        add_evals(
            session,
            pretrain,
            config,
            request.evals,
            evals_res,
            now,
            plan.job_eval_options(),
            reuse=request.reuse,
        )
        added += 1
    return added
