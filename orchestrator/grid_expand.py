"""Expanding a grid (base config + axes + explicit override sets) into validated combinations.

Axes are a cartesian product over dotted config fields (``loss.teacher_temp: [0.04, 0.07]``);
explicit override sets are crossed with it (each set once per axis combination). ``seeds``
repeats every combination once per ``train.seed`` (:meth:`Combination.runs`); the seed is
not an axis, so a combination stays one row of the summary with statistics over its seeds. The base
and then every combination are validated once with :class:`dino_core.config.DinoConfig`;
every problem is collected as a :class:`FieldError` at its request path (``axes.optim.lr.1``,
``overrides.0.train.seed``, ``base_config.train.epochs``), not just the first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dino_core.config import DinoConfig
from orchestrator.config_check import (
    check_config,
    known_fields,
    parse_override_list,
    placed,
    unknown_keys,
)
from orchestrator.errors import FieldError, GridValidationError

DEFAULT_MAX_COMBINATIONS = 64  # the default of the one setting, DINO_API_MAX_GRID_COMBINATIONS
MAX_COMBINATIONS_CEILING = 256  # no setting may allow more combinations per grid

OverrideSet = Mapping[str, Any] | Sequence[str]
SEED_FIELD = "train.seed"


@dataclass(frozen=True)
class Combination:
    """One point of the grid: its index, the dotted values that define it, its config."""

    index: int
    values: dict[str, Any]
    config: DinoConfig

    def label(self) -> str:
        return label_of(self.values)

    def runs(self, seeds: Sequence[int]) -> list[DinoConfig]:
        """The config of each run: one per seed (``train.seed`` set), or the combination's
        own config once when ``seeds`` is empty."""
        if not seeds:
            return [self.config]
        cfg = self.config
        return [
            cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": seed})})
            for seed in seeds
        ]


@dataclass
class Expansion:
    """What :func:`expand` found: the combinations, the parsed override sets, the errors."""

    combinations: list[Combination] = field(default_factory=list)
    override_sets: list[dict[str, Any]] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)


def label_of(values: Mapping[str, Any]) -> str:
    """``loss.teacher_temp=0.04, crops.local_number=6`` (or ``(base config)``)."""
    return ", ".join(f"{k}={v!r}" for k, v in values.items()) or "(base config)"


def normalise_override_set(item: Any, where: str) -> tuple[dict[str, Any], list[FieldError]]:
    """``{"a.b": 1}`` or ``["a.b=1", …]`` -> ``{"a.b": 1}`` (values parsed as YAML)."""
    if isinstance(item, Mapping):
        return {str(k): v for k, v in item.items()}, []
    if isinstance(item, str) or not isinstance(item, Sequence):
        message = "expected a mapping or a list of 'section.field=value' strings"
        return {}, [FieldError(field=where, message=message)]
    return parse_override_list([str(t) for t in item], where)


def _check_axes(axes: Mapping[str, Any], out: Expansion) -> dict[str, list[Any]]:
    checked: dict[str, list[Any]] = {}
    for key, values in axes.items():
        where = f"axes.{key}"
        if not isinstance(values, Sequence) or isinstance(values, str | bytes):
            message = f"axis {key!r}: give a list of values, got {values!r}"
            out.errors.append(FieldError(field=where, message=message))
        elif len(values) == 0:
            message = f"axis {key!r} has no values: give at least one"
            out.errors.append(FieldError(field=where, message=message))
        elif str(key) in known_fields():
            checked[str(key)] = list(values)
    out.errors += unknown_keys([str(k) for k in axes], "axes")
    return checked


def _check_seeds(
    seeds: Sequence[int] | None, axes: Mapping[str, Any], sets: Sequence[dict[str, Any]]
) -> list[FieldError]:
    """``seeds``: at least one, each once, and ``train.seed`` set nowhere else."""
    if seeds is None:
        return []
    if not seeds:
        message = "seeds is empty: give at least one seed, or leave seeds out to run once"
        return [FieldError(field="seeds", message=message)]
    errors = []
    first: dict[int, int] = {}
    for i, seed in enumerate(seeds):
        if seed in first:
            message = (
                f"seed {seed} is listed twice (seeds.{first[seed]} and seeds.{i}): list it once"
            )
            errors.append(FieldError(field=f"seeds.{i}", message=message))
        first.setdefault(seed, i)
    place = "is also an axis" if SEED_FIELD in axes else None
    if place is None and any(SEED_FIELD in s for s in sets):
        place = "is also set by an override set"
    if place is not None:
        message = (
            f"{SEED_FIELD} {place} and seeds repeat every run per seed: give the seeds in one place"
        )
        errors.append(FieldError(field="seeds", message=message))
    return errors


def _check_sets(sets: Sequence[Any], axes: Mapping[str, Any], out: Expansion) -> None:
    for i, item in enumerate(sets):
        prefix = f"overrides.{i}"
        parsed, errors = normalise_override_set(item, prefix)
        errors += unknown_keys(list(parsed), prefix)
        for key in sorted(set(parsed) & set(axes)):
            message = f"override set {i} sets {key}, which is also an axis: set it in one place"
            errors.append(FieldError(field=f"{prefix}.{key}", message=message))
        out.errors += errors
        out.override_sets.append(parsed)


def count_combinations(axes: Mapping[str, Sequence[Any]], n_override_sets: int) -> int:
    return max(n_override_sets, 1) * math.prod(len(v) for v in axes.values())


def _too_many(
    axes: Mapping[str, Sequence[Any]], n_sets: int, n_seeds: int, cap: int
) -> FieldError | None:
    """The cap counts pretraining runs: combinations x seeds."""
    total = count_combinations(axes, n_sets) * max(n_seeds, 1)
    if total <= cap:
        return None
    parts = [f"{len(v)} {k}" for k, v in axes.items()]
    if n_sets:
        parts.insert(0, f"{n_sets} override sets")
    if n_seeds:
        parts.append(f"{n_seeds} seeds")
    what = "pretraining runs" if n_seeds else "combinations"
    return FieldError(
        field="axes",
        message=(
            f"grid has {total} {what} ({' x '.join(parts) or 'no axes'}), more than the "
            f"cap of {cap}: drop axis values{' or seeds' if n_seeds else ''} or split the grid"
        ),
        type="too_many_combinations",
    )


def _combine(base: Mapping[str, Any], axes: dict[str, list[Any]], out: Expansion) -> None:
    seen: dict[str, int] = {}
    index = 0
    for set_no, s in enumerate(out.override_sets or [{}]):
        for point in itertools.product(*(list(enumerate(v)) for v in axes.values())):
            picked = {k: v for k, (_, v) in zip(axes, point, strict=True)}
            values = {**s, **picked}
            where = {k: f"overrides.{set_no}.{k}" for k in s}
            where.update({k: f"axes.{k}.{i}" for k, (i, _) in zip(axes, point, strict=True)})
            cfg, errors = check_config(base, values)
            label = f"grid combination {index} ({label_of(values)})"
            out.errors += [
                e.model_copy(update={"message": f"{label}: {e.message}"})
                for e in placed(errors, where, "base_config")
            ]
            if cfg is not None:
                digest = cfg.config_hash()
                if digest in seen:
                    message = (
                        f"grid combinations {seen[digest]} and {index} ({label_of(values)}) give "
                        "the same config: remove the repeated axis value or override set"
                    )
                    out.errors.append(FieldError(field="axes", message=message))
                seen.setdefault(digest, index)
                out.combinations.append(Combination(index, values, cfg))
            index += 1


def expand(
    base: Mapping[str, Any],
    axes: Mapping[str, Any],
    override_sets: Sequence[Any] = (),
    *,
    seeds: Sequence[int] | None = None,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
) -> Expansion:
    """Every combination, validated once; ``errors`` holds every problem (the first per
    field). The shape of the request (axes, override sets, seeds, base config, the cap) is
    checked first, all of it; the combinations only when it is sound (their keys are then
    known)."""
    out = Expansion()
    checked = _check_axes(axes, out)
    _check_sets(override_sets, checked, out)
    out.errors += _check_seeds(seeds, axes, out.override_sets)
    _, errors = check_config(base)
    out.errors += [
        e.model_copy(update={"message": f"grid base config: {e.message}"})
        for e in placed(errors, {}, "base_config")
    ]
    too_many = _too_many(checked, len(override_sets), len(seeds or ()), max_combinations)
    out.errors += [too_many] if too_many is not None else []
    if not out.errors:
        _combine(base, checked, out)
    first: dict[str, FieldError] = {}
    for e in out.errors:
        first.setdefault(e.field, e)
    out.errors = list(first.values())
    return out


def expand_grid(
    base: Mapping[str, Any],
    axes: Mapping[str, Any],
    override_sets: Sequence[OverrideSet] = (),
    *,
    seeds: Sequence[int] | None = None,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
) -> list[Combination]:
    """All combinations, validated; raises :class:`GridValidationError` naming each culprit."""
    found = expand(base, axes, override_sets, seeds=seeds, max_combinations=max_combinations)
    if found.errors:
        raise GridValidationError(found.errors)
    return found.combinations
