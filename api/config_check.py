"""Validating (partial) DINO configs of a request, with errors at request field paths.

The same :class:`dino_core.config.DinoConfig` model the trainer uses decides; this module only
merges a partial config over the defaults (as :func:`dino_core.config.build_config` does) and
reports pydantic's structured errors at ``body.<where>.<section>.<field>`` instead of one text.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from api.problems import FieldError, clean_message
from dino_core.config import ConfigError, DinoConfig, apply_overrides, flatten, parse_value

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


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` laid over ``base`` section by section (partial sections keep defaults)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _field_of(loc: Sequence[Any], msg: str) -> str:
    dotted = ".".join(str(p) for p in loc)
    if dotted in known_fields():
        return dotted
    found = _FIELD_IN_MESSAGE.match(msg)  # cross-field checks name the field first
    if found and found.group(1) in known_fields():
        return found.group(1)
    return dotted


def pydantic_errors(err: ValidationError, prefix: str) -> list[FieldError]:
    """Each error of a DinoConfig validation, at ``<prefix>.<field>``."""
    out = []
    for e in err.errors():
        msg = clean_message(e["msg"])
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see configs/ for valid keys)"
        field = _field_of(e["loc"], msg)
        full = f"{prefix}.{field}" if field else prefix
        out.append(FieldError(field=full, message=msg, type=str(e["type"])))
    return out


def check_config(
    partial: Mapping[str, Any],
    prefix: str,
    dotted: Mapping[str, Any] | None = None,
    dotted_prefix: str | None = None,
) -> tuple[DinoConfig | None, list[FieldError]]:
    """Validate ``partial`` (plus ``dotted`` overrides) over the defaults.

    Errors on a field the overrides set are reported at ``<dotted_prefix>.<field>``.
    """
    merged = merge(defaults(), partial)
    if dotted:
        try:
            merged = apply_overrides(merged, dict(dotted))
        except ConfigError as err:
            return None, [FieldError(field=dotted_prefix or prefix, message=str(err))]
    try:
        return DinoConfig.model_validate(merged), []
    except ValidationError as err:
        errors = pydantic_errors(err, prefix)
    if dotted and dotted_prefix:
        prefixed = {f"{prefix}.{k}": f"{dotted_prefix}.{k}" for k in dotted}
        errors = [e.model_copy(update={"field": prefixed.get(e.field, e.field)}) for e in errors]
    return None, errors


def parse_override_list(
    items: Sequence[str], prefix: str
) -> tuple[dict[str, Any], list[FieldError]]:
    """``["loss.teacher_temp=0.04", …]`` -> a dict (values parsed as YAML), with errors."""
    out: dict[str, Any] = {}
    errors = []
    for i, text in enumerate(items):
        key, sep, raw = text.partition("=")
        where = f"{prefix}.{i}"
        if not sep or not key.strip():
            message = f"{text!r} must look like section.field=value"
            errors.append(FieldError(field=where, message=message))
            continue
        try:
            out[key.strip()] = parse_value(raw)
        except yaml.YAMLError as err:
            errors.append(FieldError(field=where, message=f"value is not valid YAML: {err}"))
    return out, errors


def unknown_keys(keys: Sequence[str], prefix: str) -> list[FieldError]:
    """Dotted keys that are not config fields (``loss.teacher_tmp``)."""
    return [
        FieldError(
            field=f"{prefix}.{k}",
            message=f"{k!r} is not a config field: use section.field, e.g. loss.teacher_temp",
            type="unknown_field",
        )
        for k in keys
        if k not in known_fields()
    ]


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
            found += non_finite(v, f"{path}.{k}", depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found += non_finite(v, f"{path}.{i}", depth + 1)
    return found
