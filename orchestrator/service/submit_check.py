"""Everything checked before a job or grid is queued: one call per request, every error.

:func:`check_grid` turns a grid request into its validated combinations (a :class:`GridPlan`)
and :func:`check_job` a job request into its config; otherwise they raise
:class:`GridValidationError` / :class:`JobValidationError` listing every offending field by
its path from the top of the request (``axes.optim.lr.1``, ``evals_options.eval_knn.k``).
Configs are validated with the DinoConfig model, the grid size is capped, floats must be
finite, evaluation options must fit their runner (:mod:`dino_core.eval.options`), and with a
:class:`PathPolicy` every path a worker would read (``data.root``, ``eval_options.data.root``,
``source_checkpoint``) must lie inside the configured roots. Each pretraining config must be
runnable (:mod:`orchestrator.service.runnable`: its data named and there, its network built
and fitting a worker's memory under a :class:`MemoryPolicy`); given the nodes of a cluster that
cannot grow (``cluster``), resources no node could ever hold are refused. Which job a
``source_checkpoint`` belongs to is found here; that the caller owns it is checked where the
job is stored (:mod:`orchestrator.service.sources`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from dino_core.config import DinoConfig
from dino_core.eval.baseline_key import baseline_key, decides_baseline
from dino_core.eval.options import EVAL_OPTIONS, BaselinesOptions, option_problems
from orchestrator.capacity import Bundle
from orchestrator.config_check import (
    check_config,
    non_finite,
    parse_override_list,
    placed,
    unknown_keys,
)
from orchestrator.early_stopping import check_early_stopping
from orchestrator.errors import FieldError, GridValidationError, JobValidationError
from orchestrator.grid_expand import DEFAULT_MAX_COMBINATIONS, Combination, expand
from orchestrator.paths import checkpoint_job, outside_roots
from orchestrator.schemas import CombinationView, GridPlanView, GridRequest, JobRequest
from orchestrator.service.runnable import (
    MemoryPolicy,
    PathPolicy,
    Where,
    capacity_errors,
    runnable_errors,
)
from worker.contracts import PRETRAIN, EvalKind


@dataclass(frozen=True)
class BaselineGroup:
    """Runs of a grid that share one k-NN baseline (same architecture, data and k-NN
    settings, :mod:`dino_core.eval.baseline_key`): scored once, random init at each seed."""

    key: str
    config: DinoConfig  # the config of the group's first run
    seeds: list[int]  # every train.seed among its runs, in first-seen order
    values: dict[str, Any]  # the axis / override values that decide it


@dataclass(frozen=True)
class GridPlan:
    """A checked grid: its combinations, parsed override sets, seeds, evaluation options."""

    request: GridRequest
    combinations: list[Combination]
    override_sets: list[dict[str, Any]]
    eval_options: dict[EvalKind, dict[str, Any]]
    seeds: list[int]  # [] = each combination once

    def runs(self) -> list[tuple[Combination, DinoConfig]]:
        """Every pretraining run: each combination once per seed (once without seeds)."""
        return [(c, cfg) for c in self.combinations for cfg in c.runs(self.seeds)]

    @property
    def grid_baselines(self) -> bool:
        """The k-NN baselines are scored once per grid (a ``baselines`` job per group) when
        the grid runs k-NN and does not switch its baselines off."""
        knn = self.eval_options.get("eval_knn", {})
        return "eval_knn" in self.request.evals and knn.get("baselines", True) is not False

    def baseline_groups(self) -> list[BaselineGroup]:
        if not self.grid_baselines:
            return []
        groups: dict[str, BaselineGroup] = {}
        for combo, cfg in self.runs():
            key = baseline_key(cfg.to_dict())
            values = {k: v for k, v in combo.values.items() if decides_baseline(k)}
            group = groups.setdefault(key, BaselineGroup(key, cfg, [], values))
            if cfg.train.seed not in group.seeds:
                group.seeds.append(cfg.train.seed)
        return list(groups.values())

    def job_eval_options(self) -> dict[EvalKind, dict[str, Any]]:
        """The options of each run's eval jobs: with grid baselines, k-NN skips its own."""
        if not self.grid_baselines:
            return self.eval_options
        knn = {**self.eval_options.get("eval_knn", {}), "baselines": False}
        return {**self.eval_options, "eval_knn": knn}

    def baseline_options(self, group: BaselineGroup) -> dict[str, Any]:
        """The ``baselines`` job's options: the grid's k-NN options and the group's seeds."""
        knn = self.eval_options.get("eval_knn", {})
        kept = {k: v for k, v in knn.items() if k in BaselinesOptions.model_fields}
        return {**kept, "seeds": list(group.seeds)}

    def view(self) -> GridPlanView:
        combos = [
            CombinationView(
                index=c.index,
                label=c.label(),
                values=c.values,
                config_hash=c.config.config_hash(),
                config=c.config.to_dict(),
            )
            for c in self.combinations
        ]
        n_runs = len(self.runs())
        n_baselines = len(self.baseline_groups())
        return GridPlanView(
            name=self.request.name,
            n_combinations=len(combos),
            seeds=list(self.seeds),
            n_runs=n_runs,
            n_baseline_jobs=n_baselines,
            n_jobs=n_runs * (1 + len(self.request.evals)) + n_baselines,
            evals=list(self.request.evals),
            combinations=combos,
        )


def eval_options(
    kind: EvalKind, options: Mapping[str, Any], prefix: str
) -> tuple[dict[str, Any], list[FieldError]]:
    """``options`` checked against the runner of ``kind``: the options as given (typed), or
    the errors at ``<prefix>.<option>``."""
    model = EVAL_OPTIONS[kind.removeprefix("eval_")]
    try:
        return model.model_validate(dict(options)).model_dump(exclude_unset=True), []
    except ValidationError as err:
        return {}, [
            FieldError(field=f"{prefix}.{path}", message=msg, type=typ)
            for path, msg, typ in option_problems(kind, err)
        ]


def _eval_root(options: Mapping[str, Any], paths: PathPolicy, prefix: str) -> list[FieldError]:
    root = (options.get("data") or {}).get("root")
    if root is None:
        return []
    error = outside_roots(
        root, paths.dataset_roots, f"{prefix}.data.root", "eval_options.data.root"
    )
    return [error] if error else []


def _all_eval_options(
    by_kind: Mapping[EvalKind, Mapping[str, Any]], prefix: str, paths: PathPolicy | None
) -> tuple[dict[EvalKind, dict[str, Any]], list[FieldError]]:
    checked: dict[EvalKind, dict[str, Any]] = {}
    errors: list[FieldError] = []
    for kind, options in by_kind.items():
        checked[kind], errs = eval_options(kind, options, f"{prefix}.{kind}")
        errors += errs
        if paths is not None and not errs:
            errors += _eval_root(checked[kind], paths, f"{prefix}.{kind}")
    return checked, errors


def _grid_field(request: GridRequest, combo: Combination) -> Where:
    """Where a config field of ``combo`` was set in the grid request."""

    def where(field: str) -> str:
        if field not in combo.values:
            return f"base_config.{field}"
        return f"axes.{field}" if field in request.axes else "overrides"

    return where


def check_grid(
    request: GridRequest,
    *,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
    paths: PathPolicy | None = None,
    memory: MemoryPolicy | None = None,
    cluster: list[Bundle] | None = None,
) -> GridPlan:
    """The grid's validated combinations, or :class:`GridValidationError` with every error."""
    errors = non_finite(request.model_dump(mode="python"), "")
    if errors:
        raise GridValidationError(errors)
    options, errors = _all_eval_options(request.eval_options, "eval_options", paths)
    limits = {"resources": request.resources, "eval_resources": request.eval_resources}
    errors += capacity_errors(limits, cluster)
    found = expand(
        request.base_config,
        request.axes,
        request.overrides,
        seeds=request.seeds,
        max_combinations=max_combinations,
    )
    errors += found.errors
    if not errors and request.early_stopping is not None:
        labelled = [(f"grid combination {c.index}", c.config) for c in found.combinations]
        errors += check_early_stopping(request.early_stopping, labelled)
    if not errors:
        for combo in found.combinations:  # each combination's own data and memory errors
            where = _grid_field(request, combo)
            errors += runnable_errors(combo.config, request.resources, paths, memory, where)
    if errors:
        raise GridValidationError(list({e.field + e.message: e for e in errors}.values()))
    seeds = list(request.seeds or [])
    return GridPlan(request, found.combinations, found.override_sets, options, seeds)


@dataclass(frozen=True)
class JobPlan:
    """A checked job: its config and the typed options of it and of its follow-up evals."""

    config: DinoConfig
    eval_options: dict[str, Any]
    evals_options: dict[EvalKind, dict[str, Any]]
    checkpoint_job: str | None = None  # the job whose directory source_checkpoint is in


def _job_overrides(request: JobRequest) -> tuple[dict[str, Any], list[FieldError]]:
    if isinstance(request.overrides, list):
        dotted, errors = parse_override_list(request.overrides, "overrides")
    else:
        dotted, errors = dict(request.overrides), []
    return dotted, errors + unknown_keys(list(dotted), "overrides")


def _job_field(dotted: Mapping[str, Any]) -> Where:
    """Where a config field was set in a job request: its overrides, else its config."""

    def where(field: str) -> str:
        return f"overrides.{field}" if field in dotted else f"config.{field}"

    return where


def check_job(
    request: JobRequest,
    *,
    paths: PathPolicy | None = None,
    memory: MemoryPolicy | None = None,
    cluster: list[Bundle] | None = None,
) -> JobPlan:
    """The job's config and options, or :class:`JobValidationError` with every error."""
    errors = non_finite(request.model_dump(mode="python"), "")
    if errors:
        raise JobValidationError(errors)
    dotted, errors = _job_overrides(request)
    errors += capacity_errors({"resources": request.resources}, cluster)
    cfg = None
    if not errors:  # the config can be built only from known, well-formed overrides
        cfg, errs = check_config(request.config, dotted)
        errors += placed(errs, {k: f"overrides.{k}" for k in dotted}, "config")
    own: dict[str, Any] = {}
    if request.kind != "pretrain":
        own, errs = eval_options(request.kind, request.eval_options, "eval_options")
        errors += errs
        if paths is not None and not errs:
            errors += _eval_root(own, paths, "eval_options")
    follow, errs = _all_eval_options(request.evals_options, "evals_options", paths)
    errors += errs
    owner = None
    if paths is not None and request.source_checkpoint is not None:
        owner, error = checkpoint_job(
            request.source_checkpoint, paths.storage_root, "source_checkpoint"
        )
        errors += [error] if error else []
    if cfg is not None:
        where = _job_field(dotted)
        if request.kind == PRETRAIN:
            errors += runnable_errors(cfg, request.resources, paths, memory, where, errors)
        elif paths is not None and cfg.data.root is not None:  # evals read the checkpoint's
            error = outside_roots(cfg.data.root, paths.dataset_roots, where("data.root"), "data")
            errors += [error] if error else []
    if errors or cfg is None:
        raise JobValidationError(errors)
    return JobPlan(cfg, own, follow, owner or None)
