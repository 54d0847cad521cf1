"""Expanding a grid (base config + axes + explicit override sets) into validated combinations.

Axes are a cartesian product over dotted config fields (``loss.teacher_temp: [0.04, 0.07]``);
explicit override sets are crossed with it (each set once per axis combination). Every
combination is validated with :func:`dino_core.config.build_config` before anything is stored.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dino_core.config import ConfigError, DinoConfig, build_config, parse_value
from orchestrator.errors import GridValidationError

DEFAULT_MAX_COMBINATIONS = 256

OverrideSet = Mapping[str, Any] | Sequence[str]


@dataclass(frozen=True)
class Combination:
    """One point of the grid: its index, the dotted values that define it, its config."""

    index: int
    values: dict[str, Any]
    config: DinoConfig

    def label(self) -> str:
        return label_of(self.values)


def label_of(values: Mapping[str, Any]) -> str:
    """``loss.teacher_temp=0.04, crops.local_number=6`` (or ``(base config)``)."""
    return ", ".join(f"{k}={v!r}" for k, v in values.items()) or "(base config)"


def normalise_override_set(item: OverrideSet, where: str) -> dict[str, Any]:
    """``{"a.b": 1}`` or ``["a.b=1", …]`` -> ``{"a.b": 1}`` (values parsed as YAML)."""
    if isinstance(item, Mapping):
        return {str(k): v for k, v in item.items()}
    if isinstance(item, str):
        raise GridValidationError(f"{where}: expected a mapping or a list of 'key=value' strings")
    out: dict[str, Any] = {}
    for text in item:
        key, sep, raw = str(text).partition("=")
        if not sep or not key.strip():
            raise GridValidationError(f"{where}: {text!r} must look like section.field=value")
        out[key.strip()] = parse_value(raw)
    return out


def _check_axes(axes: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    checked: dict[str, list[Any]] = {}
    for key, values in axes.items():
        if not isinstance(values, Sequence) or isinstance(values, str | bytes):
            raise GridValidationError(f"axis {key!r}: give a list of values, got {values!r}")
        if len(values) == 0:
            raise GridValidationError(f"axis {key!r} has no values: give at least one")
        checked[str(key)] = list(values)
    return checked


def count_combinations(axes: Mapping[str, Sequence[Any]], n_override_sets: int) -> int:
    return max(n_override_sets, 1) * math.prod(len(v) for v in axes.values())


def expand_grid(
    base: Mapping[str, Any],
    axes: Mapping[str, Sequence[Any]],
    override_sets: Sequence[OverrideSet] = (),
    *,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
) -> list[Combination]:
    """All combinations, validated; raises :class:`GridValidationError` naming the culprit."""
    checked = _check_axes(axes)
    sets = [normalise_override_set(s, f"override set {i}") for i, s in enumerate(override_sets)]
    total = count_combinations(checked, len(sets))
    if total > max_combinations:
        parts = [f"{len(v)} {k}" for k, v in checked.items()]
        if sets:
            parts.insert(0, f"{len(sets)} override sets")
        sizes = " x ".join(parts)
        raise GridValidationError(
            f"grid has {total} combinations ({sizes}), more than the cap of {max_combinations}: "
            "drop axis values or split the grid"
        )
    for i, s in enumerate(sets):
        both = sorted(set(s) & set(checked))
        if both:
            raise GridValidationError(
                f"override set {i} sets {', '.join(both)}, which is also an axis: set each "
                "field in one place only"
            )
    try:
        build_config(dict(base), source="grid base config")
    except ConfigError as err:
        raise GridValidationError(str(err)) from None
    keys = list(checked)
    combos: list[Combination] = []
    seen: dict[str, int] = {}
    for s in sets or [{}]:
        for point in itertools.product(*(checked[k] for k in keys)):
            values = {**s, **dict(zip(keys, point, strict=True))}
            index = len(combos)
            label = label_of(values)
            try:
                cfg = build_config(dict(base), values, source=f"grid combination {index} ({label})")
            except ConfigError as err:
                msg = str(err)
                if not msg.startswith("invalid DINO config"):
                    msg = f"grid combination {index} ({label}): {msg}"
                raise GridValidationError(msg) from None
            digest = cfg.config_hash()
            if digest in seen:
                raise GridValidationError(
                    f"grid combinations {seen[digest]} and {index} ({label}) give the same "
                    "config: remove the repeated axis value or override set"
                )
            seen[digest] = index
            combos.append(Combination(index, values, cfg))
    return combos
