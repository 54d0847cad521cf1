"""Checking (partial) DINO configs of a request, with every error at its config field.

The same :class:`dino_core.config.DinoConfig` model the trainer uses decides; this module
merges a partial config over the defaults (:func:`dino_core.config.deep_merge`), applies
dotted overrides and turns pydantic's structured errors into :class:`FieldError` s whose
``field`` is the dotted config field (``loss.teacher_temp``), for the caller to place in
its request.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from dino_core.config import (
    UNKNOWN_FIELD,
    ConfigError,
    DinoConfig,
    apply_overrides,
    deep_merge,
    flatten,
    split_override,
)
from orchestrator.errors import FieldError, clean_message

MAX_DEPTH = 16
_FIELD_IN_MESSAGE = re.compile(r"^([a-z_]+\.[a-z_]+)\b")


@functools.cache
def _defaults_json() -> str:
    return json.dumps(DinoConfig().to_dict())


def defaults() -> dict[str, Any]:
    """A fresh copy of the default config as a dict."""
    return dict(json.loads(_defaults_json()))


@functools.cache
def known_fields() -> frozenset[str]:
    """Every dotted field of a DinoConfig (``loss.teacher_temp`` …)."""
    return frozenset(flatten(defaults()))


def _field_of(loc: Sequence[Any], msg: str) -> str:
    parts = [str(p) for p in loc]
    for end in range(len(parts), 0, -1):  # a tuple item (crops.global_scale.0) -> its field
        if ".".join(parts[:end]) in known_fields():
            return ".".join(parts[:end])
    found = _FIELD_IN_MESSAGE.match(msg)  # cross-field checks name the field first
    if found and found.group(1) in known_fields():
        return found.group(1)
    return ".".join(parts)


def config_errors(err: ValidationError) -> list[FieldError]:
    """Each error of a DinoConfig validation, at its dotted config field."""
    out = []
    for e in err.errors():
        msg = UNKNOWN_FIELD if e["type"] == "extra_forbidden" else clean_message(e["msg"])
        out.append(FieldError(field=_field_of(e["loc"], msg), message=msg, type=str(e["type"])))
    return out


def check_config(
    partial: Mapping[str, Any], dotted: Mapping[str, Any] | None = None
) -> tuple[DinoConfig | None, list[FieldError]]:
    """Validate ``partial`` (plus ``dotted`` overrides) over the defaults, once."""
    merged = deep_merge(defaults(), partial)
    if dotted:
        try:
            merged = apply_overrides(merged, dict(dotted))
        except ConfigError as err:
            return None, [FieldError(field=next(iter(dotted)), message=str(err))]
    try:
        return DinoConfig.model_validate(merged), []
    except ValidationError as err:
        return None, config_errors(err)


def placed(
    errors: Sequence[FieldError], where: Mapping[str, str], default: str
) -> list[FieldError]:
    """``errors`` moved to request paths: a field in ``where`` to that path, else under
    ``default`` (``config.loss.teacher_temp``)."""
    return [
        e.model_copy(update={"field": where.get(e.field, f"{default}.{e.field}")}) for e in errors
    ]


def parse_override_list(
    items: Sequence[str], prefix: str
) -> tuple[dict[str, Any], list[FieldError]]:
    """``["loss.teacher_temp=0.04", …]`` -> a dict (values parsed as YAML), with errors."""
    out: dict[str, Any] = {}
    errors = []
    for i, text in enumerate(items):
        try:
            key, value = split_override(str(text))
        except ConfigError as err:
            errors.append(FieldError(field=f"{prefix}.{i}", message=str(err)))
            continue
        out[key] = value
    return out, errors


def unknown_keys(keys: Sequence[str], prefix: str) -> list[FieldError]:
    """Dotted keys that are not config fields (``loss.teacher_tmp``, ``lossy.x``)."""
    sections = sorted({f.split(".", 1)[0] for f in known_fields()})
    errors = []
    for key in keys:
        if key in known_fields():
            continue
        section = key.split(".", 1)[0]
        message = UNKNOWN_FIELD
        if section not in sections:
            message = (
                f"{section!r} is not a config section: use section.field with a section of "
                f"{', '.join(sections)}"
            )
        errors.append(FieldError(field=f"{prefix}.{key}", message=message, type="unknown_field"))
    return errors


def non_finite(value: Any, path: str, depth: int = 0) -> list[FieldError]:
    """NaN/Infinity anywhere in a JSON value (Python's json accepts them; stores may not),
    and nesting deeper than :data:`MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        return [FieldError(field=path, message=f"nested deeper than {MAX_DEPTH} levels")]
    if isinstance(value, float) and not math.isfinite(value):
        return [FieldError(field=path, message="must be a finite number", type="finite_number")]
    found: list[FieldError] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            found += non_finite(v, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found += non_finite(v, f"{path}.{i}" if path else str(i), depth + 1)
    return found
