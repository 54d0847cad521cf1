"""Per-combination statistics over seeds and the marks against the best combination, checked
against a direct computation (statistics, and Welch's t from its textbook formula)."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest
from scipy import stats as scipy_stats

from orchestrator.ablation import RULE, Stat, welch_p
from orchestrator.ablation.aggregate import columns_for, combination_table


def welch_by_hand(a: list[float], b: list[float]) -> float:
    """t = (mean a - mean b) / sqrt(va/na + vb/nb), Welch-Satterthwaite degrees of freedom."""
    va, vb, na, nb = statistics.variance(a), statistics.variance(b), len(a), len(b)
    se2 = va / na + vb / nb
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(se2)
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return float(2 * scipy_stats.t.sf(abs(t), df))


def test_welch_p_is_the_textbook_welch_test() -> None:
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.5]
    assert welch_p(a, b) == pytest.approx(welch_by_hand(a, b), rel=1e-12)
    assert welch_p(a, b) == pytest.approx(welch_p(b, a))
    assert 0.005 < welch_p(a, b) < 0.05
    assert welch_p([70.0, 70.5, 71.0], [70.2, 70.6, 70.9]) > 0.5  # inside the spread
    # no spread at all: the difference is exact
    assert welch_p([34.38] * 3, [34.38] * 3) == 1.0
    assert welch_p([34.38] * 3, [35.0] * 3) == 0.0
    with pytest.raises(ValueError, match="2 or more"):
        welch_p([1.0], [1.0, 2.0])


def test_stat_uses_the_sample_std() -> None:
    assert Stat.of([1.0, 2.0, 4.0]) == Stat(7 / 3, statistics.stdev([1.0, 2.0, 4.0]), 3)
    assert Stat.of([5.0]) == Stat(5.0, None, 1)
    assert Stat.of([]) == Stat(None, None, 0)


def _run(combination: int, seed: int, knn: float | None, **extra: Any) -> dict[str, Any]:
    return {"combination": combination, "lr": [0.1, 0.2, 0.3][combination], "seed": seed,
            "status": "SUCCEEDED", "knn_top1": knn, "knn_k": 20, "loss": 5.0 + seed,
            "collapsed": False, "collapse_kind": None, **extra}  # fmt: skip


def test_combinations_get_mean_std_n_and_marks_against_the_best() -> None:
    knn = {0: [80.0, 81.0, 82.0], 1: [70.0, 71.5, 69.0], 2: [79.5, 82.5, 80.5]}
    runs = [_run(c, s, v) for c, vals in knn.items() for s, v in enumerate(vals)]
    columns, table = combination_table(runs, ["lr"])
    assert columns == columns_for(["lr"])
    assert [r["combination"] for r in table] == [0, 1, 2]
    for r in table:
        vals = knn[r["combination"]]
        assert r["knn_top1"] == pytest.approx(statistics.fmean(vals))
        assert r["knn_top1_std"] == pytest.approx(statistics.stdev(vals))
        assert r["knn_top1_n"] == 3 and r["n_seeds"] == 3 and r["seeds"] == "0 1 2"
        assert r["loss"] == 6.0 and r["loss_std"] == 1.0  # seeds 0, 1, 2: loss 5, 6, 7
    best, low, close = table
    assert best["knn_top1_vs_best"] == "best" and best["knn_top1_p"] is None
    assert low["knn_top1_p"] == pytest.approx(welch_by_hand(knn[1], knn[0]))
    assert low["knn_top1_vs_best"] == "lower"  # p ~ 0.002
    assert close["knn_top1_p"] == pytest.approx(welch_by_hand(knn[2], knn[0]))
    assert close["knn_top1_vs_best"] == "~"  # 0.33 points below, inside the spread
    assert best["linear_top1"] is None and best["linear_top1_n"] == 0  # not measured
    assert "Welch" in RULE and "p < 0.05" in RULE


def test_collapsed_seeds_count_and_untested_combinations() -> None:
    runs = [
        _run(0, 0, 80.0),
        _run(0, 1, 81.0),
        _run(1, 0, None, status="COLLAPSED", collapsed=True, collapse_kind="uniform"),
        _run(1, 1, 75.0),
        _run(2, 0, None, status="COLLAPSED", collapsed=True, collapse_kind="uniform"),
    ]
    _, table = combination_table(runs, ["lr"])
    a, b, c = table
    assert a["knn_top1_vs_best"] == "best"
    assert b["status"] == "1 COLLAPSED, 1 SUCCEEDED"
    assert (b["knn_top1"], b["knn_top1_n"], b["collapsed"]) == (75.0, 1, 1)
    assert b["knn_top1_p"] is None and b["knn_top1_vs_best"] is None  # one seed: untested
    assert (c["status"], c["knn_top1"], c["collapse_kind"]) == ("COLLAPSED", None, "uniform")
    assert c["knn_top1_vs_best"] is None and c["loss_n"] == 1
