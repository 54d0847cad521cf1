"""Everything checked before a job or grid is queued, with errors at request field paths.

Configs (each grid combination included) are validated with the DinoConfig model, the grid
size is capped, floats must be finite, and every path a worker would read (``data.root``,
``eval_options.data.root``, ``source_checkpoint``) must lie inside the configured roots.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from api.config_check import check_config, non_finite, parse_override_list, unknown_keys
from api.paths import checkpoint_outside, outside_roots
from api.problems import FieldError, validation_problem
from api.schemas import GridSubmission, JobSubmission
from api.settings import ApiSettings
from dino_core.config import DinoConfig
from orchestrator.errors import GridValidationError
from orchestrator.grid_expand import (
    Combination,
    count_combinations,
    expand_grid,
    normalise_override_set,
)
from worker.settings import jobs_root


def _raise(errors: list[FieldError]) -> None:
    if errors:
        raise validation_problem(errors)


def _data_root(cfg: DinoConfig, roots: list[Path], field: str) -> FieldError | None:
    if cfg.data.root is None:
        return None
    return outside_roots(cfg.data.root, roots, field, "data.root")


def _eval_options(options: Mapping[str, Any], roots: list[Path], prefix: str) -> list[FieldError]:
    data = options.get("data")
    if not isinstance(data, Mapping) or data.get("root") is None:
        return []
    root = data["root"]
    field = f"{prefix}.data.root"
    if not isinstance(root, str):
        return [FieldError(field=field, message="must be a string path")]
    error = outside_roots(root, roots, field, "eval_options.data.root")
    return [error] if error else []


def check_job(sub: JobSubmission, settings: ApiSettings) -> None:
    """Raise a 422 :class:`ApiProblem` naming each invalid field of a job submission."""
    _raise(non_finite(sub.model_dump(mode="python"), "body"))
    errors: list[FieldError] = []
    dotted: dict[str, Any] = {}
    if isinstance(sub.overrides, list):
        dotted, errors = parse_override_list(sub.overrides, "body.overrides")
    else:
        dotted = dict(sub.overrides)
    errors += unknown_keys(list(dotted), "body.overrides")
    _raise(errors)
    cfg, errors = check_config(sub.config, "body.config", dotted, "body.overrides")
    _raise(errors)
    assert cfg is not None
    roots = settings.resolved_dataset_roots()
    where = "body.overrides.data.root" if "data.root" in dotted else "body.config.data.root"
    found = [_data_root(cfg, roots, where)]
    found += _eval_options(sub.eval_options, roots, "body.eval_options")
    for kind, options in sub.evals_options.items():
        found += _eval_options(options, roots, f"body.evals_options.{kind}")
    if sub.source_checkpoint is not None:
        where = "body.source_checkpoint"
        found.append(checkpoint_outside(sub.source_checkpoint, jobs_root(), where))
    _raise([e for e in found if e is not None])


def _override_sets(sub: GridSubmission) -> tuple[list[dict[str, Any]], list[FieldError]]:
    sets: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    for i, item in enumerate(sub.overrides):
        prefix = f"body.overrides.{i}"
        if isinstance(item, list):
            parsed, errs = parse_override_list(item, prefix)
            errors += errs
        else:
            parsed = normalise_override_set(item, prefix)
        errors += unknown_keys(list(parsed), prefix)
        sets.append(parsed)
    return sets, errors


def validate_grid(sub: GridSubmission, max_combinations: int) -> list[Combination]:
    """Every combination of the grid, validated; a 422 :class:`ApiProblem` naming each
    invalid field otherwise (also used by the CLI before sending)."""
    _raise(non_finite(sub.model_dump(mode="python"), "body"))
    total = count_combinations(sub.axes, len(sub.overrides))
    if total > max_combinations:
        sizes = " x ".join(f"{len(v)} {k}" for k, v in sub.axes.items()) or "no axes"
        _raise(
            [
                FieldError(
                    field="body.axes",
                    message=(
                        f"grid has {total} combinations ({sizes}, {len(sub.overrides)} override "
                        f"sets), more than the cap of {max_combinations}: drop axis values or "
                        "split the grid"
                    ),
                    type="too_many_combinations",
                )
            ]
        )
    _, errors = check_config(sub.base_config, "body.base_config")
    _raise(errors)
    errors = unknown_keys(list(sub.axes), "body.axes")
    sets, set_errors = _override_sets(sub)
    _raise(errors + set_errors)
    for key, values in sub.axes.items():
        for i, value in enumerate(values):
            _, errs = check_config(sub.base_config, "body.base_config", {key: value}, "body.axes")
            errors += [e.model_copy(update={"field": f"body.axes.{key}.{i}"}) for e in errs]
    for i, s in enumerate(sets):
        _, errs = check_config(sub.base_config, "body.base_config", s, f"body.overrides.{i}")
        errors += errs
    _raise(errors)
    try:
        return expand_grid(sub.base_config, sub.axes, sets, max_combinations=max_combinations)
    except GridValidationError as err:
        raise validation_problem(
            [FieldError(field="body.axes", message=str(err), type="grid_invalid")]
        ) from None


def check_grid(sub: GridSubmission, settings: ApiSettings) -> None:
    """:func:`validate_grid` with this server's cap, then the dataset paths of every
    combination and of ``eval_options``."""
    combos = validate_grid(sub, settings.max_grid_combinations)
    roots = settings.resolved_dataset_roots()
    found: list[FieldError | None] = []
    for combo in combos:
        if "data.root" in combo.values:
            where = "body.axes.data.root" if "data.root" in sub.axes else "body.overrides"
        else:
            where = "body.base_config.data.root"
        found.append(_data_root(combo.config, roots, where))
    for kind, options in sub.eval_options.items():
        found += _eval_options(options, roots, f"body.eval_options.{kind}")
    unique = {e.field + e.message: e for e in found if e is not None}
    _raise(list(unique.values()))
