"""Grid expansion: products, override sets, validation naming the culprit, the size cap."""

from __future__ import annotations

import pytest

from orchestrator.errors import GridValidationError
from orchestrator.grid_expand import count_combinations, expand_grid
from tests.tiny import tiny_vit

TINY = {
    "model": tiny_vit(),
    "crops": {"global_size": 16, "local_size": 8},
}
AXES = {
    "loss.teacher_temp": [0.04, 0.07],
    "teacher.momentum": [0.99, 0.996],
    "crops.local_number": [0, 6],
}


def test_product_of_three_axes_gives_eight_configs_in_order() -> None:
    combos = expand_grid(TINY, AXES)
    assert len(combos) == 8
    assert [c.index for c in combos] == list(range(8))
    # last axis varies fastest, like nested loops in the order the axes were given
    assert combos[0].values == {
        "loss.teacher_temp": 0.04,
        "teacher.momentum": 0.99,
        "crops.local_number": 0,
    }
    assert combos[1].values["crops.local_number"] == 6
    assert combos[7].values == {
        "loss.teacher_temp": 0.07,
        "teacher.momentum": 0.996,
        "crops.local_number": 6,
    }
    for c in combos:
        assert c.config.loss.teacher_temp == c.values["loss.teacher_temp"]
        assert c.config.teacher.momentum == c.values["teacher.momentum"]
        assert c.config.crops.local_number == c.values["crops.local_number"]
        assert c.config.model.embed_dim == 32  # base config kept
    assert len({c.config.config_hash() for c in combos}) == 8


def test_override_sets_cross_the_axes_and_accept_key_value_strings() -> None:
    sets = [{"optim.lr": 0.001}, ["optim.lr=0.002", "train.seed=3"]]
    combos = expand_grid(TINY, {"loss.teacher_temp": [0.04, 0.07]}, sets)
    assert len(combos) == 4
    assert [c.config.optim.lr for c in combos] == [0.001, 0.001, 0.002, 0.002]
    assert combos[2].values == {"optim.lr": 0.002, "train.seed": 3, "loss.teacher_temp": 0.04}
    assert combos[3].config.train.seed == 3


def test_only_override_sets_and_no_axes() -> None:
    combos = expand_grid(TINY, {}, [{"train.seed": 1}, {"train.seed": 2}])
    assert [c.config.train.seed for c in combos] == [1, 2]
    assert count_combinations({}, 0) == 1
    assert [c.label() for c in expand_grid(TINY, {})] == ["(base config)"]


def test_one_invalid_combination_rejects_the_grid_naming_combination_and_field() -> None:
    with pytest.raises(GridValidationError) as err:
        expand_grid(TINY, {"crops.local_number": [2], "loss.teacher_temp": [0.07, -0.5]})
    msg = str(err.value)
    assert "grid combination 1" in msg
    assert "loss.teacher_temp" in msg
    assert "-0.5" in msg


def test_cross_field_rule_is_checked_per_combination() -> None:
    with pytest.raises(GridValidationError, match=r"combination 1 .*crops.global_size=18"):
        expand_grid(TINY, {"crops.global_size": [16, 18]})


def test_unknown_section_and_unknown_field_are_named() -> None:
    with pytest.raises(GridValidationError, match="'lossy' is not a config section"):
        expand_grid(TINY, {"lossy.teacher_temp": [0.04]})
    with pytest.raises(GridValidationError, match=r"loss\.teacher_tmp: unknown field"):
        expand_grid(TINY, {"loss.teacher_tmp": [0.04]})


def test_invalid_base_config_is_reported_as_base() -> None:
    with pytest.raises(GridValidationError, match="grid base config"):
        expand_grid({"model": {"depth": 0}}, {"loss.teacher_temp": [0.04]})


def test_size_cap_names_the_count_and_the_cap() -> None:
    axes = {"train.seed": list(range(17)), "optim.lr": [0.001 * i for i in range(1, 17)]}
    with pytest.raises(GridValidationError, match=r"272 combinations .* cap of 256"):
        expand_grid(TINY, axes, max_combinations=256)
    assert len(expand_grid(TINY, {"train.seed": list(range(5))}, max_combinations=5)) == 5
    with pytest.raises(GridValidationError, match="cap of 4"):
        expand_grid(TINY, {"train.seed": list(range(5))}, max_combinations=4)


def test_duplicates_empty_axes_and_double_definitions_are_refused() -> None:
    with pytest.raises(GridValidationError, match=r"combinations 0 and 2 .* same config"):
        expand_grid(TINY, {"train.seed": [1, 2, 1]})
    with pytest.raises(GridValidationError, match=r"axis 'train\.seed' has no values"):
        expand_grid(TINY, {"train.seed": []})
    with pytest.raises(GridValidationError, match="give a list"):
        expand_grid(TINY, {"train.seed": "1,2"})  # type: ignore[dict-item]
    with pytest.raises(GridValidationError, match="also an axis"):
        expand_grid(TINY, {"train.seed": [1, 2]}, [{"train.seed": 5}])
    with pytest.raises(GridValidationError, match=r"section\.field=value"):
        expand_grid(TINY, {}, [["train.seed"]])
