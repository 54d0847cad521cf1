"""The typed options of each evaluation kind match the keyword arguments of its runner."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from pydantic import ValidationError

from dino_core.eval.baseline_run import run_knn_baselines
from dino_core.eval.options import EVAL_OPTIONS, FIXED_ARGUMENTS, DataOptions
from dino_core.eval.run import DataOverrides, run_attention_eval, run_knn_eval, run_linear_eval

RUNNERS = {
    "knn": run_knn_eval,
    "linear": run_linear_eval,
    "attention": run_attention_eval,
    "baselines": run_knn_baselines,
}


@pytest.mark.parametrize("kind", sorted(RUNNERS))
def test_options_are_the_runner_keywords_with_its_defaults(kind: str) -> None:
    params = inspect.signature(RUNNERS[kind]).parameters
    model = EVAL_OPTIONS[kind]
    assert set(model.model_fields) == set(params) - FIXED_ARGUMENTS
    for name, field in model.model_fields.items():
        assert field.default == params[name].default, name


def test_data_options_are_the_data_overrides() -> None:
    assert list(DataOptions.model_fields) == [f.name for f in dataclasses.fields(DataOverrides)]


def test_options_refuse_unknown_and_out_of_range_values() -> None:
    with pytest.raises(ValidationError, match=r"\nk\n"):
        EVAL_OPTIONS["knn"].model_validate({"k": 5})
    with pytest.raises(ValidationError, match=r"ks\.0"):
        EVAL_OPTIONS["knn"].model_validate({"ks": [0]})
    with pytest.raises(ValidationError, match=r"data\.splt"):
        EVAL_OPTIONS["linear"].model_validate({"data": {"splt": "x"}})
    ok = EVAL_OPTIONS["attention"].model_validate({"threshold": 0.5, "data": {"limit": 4}})
    assert ok.model_dump(exclude_unset=True) == {"threshold": 0.5, "data": {"limit": 4}}
