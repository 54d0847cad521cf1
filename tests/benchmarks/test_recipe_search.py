"""The recipe search's trial selection: ``--only`` runs named trials of a file in its order."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.recipe_search import load_trials, select_trials


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "trials.yaml"
    path.write_text("base: []\nk4096: [head.out_dim=4096]\ntt_006: [loss.teacher_temp=0.06]\n")
    return path


def test_only_keeps_the_named_trials_in_the_files_order(tmp_path: Path) -> None:
    path = _file(tmp_path)
    trials = load_trials(path)
    assert select_trials(trials, None, path) == trials
    picked = select_trials(trials, "tt_006, base", path)
    assert list(picked) == ["base", "tt_006"]
    assert picked["tt_006"] == ["loss.teacher_temp=0.06"]


@pytest.mark.parametrize("only", ["k1024", "base,k1024", " , "])
def test_an_unknown_or_empty_name_is_refused_with_the_files_trials(
    tmp_path: Path, only: str
) -> None:
    path = _file(tmp_path)
    with pytest.raises(
        SystemExit, match=r"--only .*trials.yaml has no trial .*base, k4096, tt_006"
    ):
        select_trials(load_trials(path), only, path)
