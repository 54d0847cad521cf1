"""The ablation table reports the configured k of the k-NN (paper: 20) and names it."""

from __future__ import annotations

from typing import Any

from api.server.summary import flat_table, to_csv
from orchestrator.schemas import EvalCell, GridRow


def _row(
    knn_metrics: dict[str, Any] | None, options: dict[str, Any], knn_k: int = 20, **metrics: Any
) -> GridRow:
    evals = {}
    if knn_metrics is not None:
        cell = EvalCell(job_id="job-e", status="SUCCEEDED", metrics=knn_metrics, options=options)
        evals["eval_knn"] = cell
    return GridRow(
        combination=0, job_id="job-p", axis_values={}, status="SUCCEEDED", metrics=metrics,
        evals=evals, collapsed=False, collapse_kind=None, mlflow_run_id=None, step=None,
        total_steps=None, knn_k=knn_k,
    )  # fmt: skip


def _knn(row: GridRow) -> tuple[Any, Any]:
    columns, table = flat_table([row])
    assert columns.index("knn_k") == columns.index("knn_top1") + 1
    return table[0]["knn_top1"], table[0]["knn_k"]


def test_the_configured_k_is_shown_and_named() -> None:
    both = {"knn_top1_k10": 50.0, "knn_top1_k20": 60.0, "knn_top1_k100": 70.0}
    assert _knn(_row(both, {"ks": [10, 20]})) == (60.0, 20)
    assert _knn(_row(both, {"ks": [20, 100]})) == (60.0, 20)
    assert _knn(_row(both, {"ks": [100, 10]})) == (70.0, 100)  # k=20 not run: the first asked
    assert _knn(_row({"knn_top1_k5": 40.0}, {}, knn_k=5)) == (40.0, 5)  # eval.knn_k of the config
    # no eval_knn job: the last in-training k-NN, which uses eval.knn_k
    assert _knn(_row(None, {}, knn_k=5, knn_top1_k20=1.0, knn_top1_k5=33.0)) == (33.0, 5)
    assert _knn(_row(None, {})) == (None, 20)
    columns, table = flat_table([_row(both, {"ks": [10, 20]})])
    assert "knn_top1,knn_k" in to_csv(columns, table).splitlines()[0]


def test_rows_carry_both_baselines_and_the_gain_over_random_init() -> None:
    metrics = {"knn_top1_k20": 81.5, "knn_top1_k20_random_init": 74.25,
               "knn_top1_k20_raw_pixels": 83.0, "knn_top1_k10_random_init": 1.0}  # fmt: skip
    _, table = flat_table([_row(metrics, {"ks": [20]})])
    row = table[0]
    assert (row["knn_random_init"], row["knn_raw_pixels"], row["knn_gain"]) == (74.25, 83.0, 7.25)
    _, table = flat_table([_row(None, {}, knn_top1_k20=60.0)])  # no eval job: no baselines
    assert (table[0]["knn_random_init"], table[0]["knn_gain"]) == (None, None)


def test_png_draws_the_baselines() -> None:
    from api.server.summary import to_png

    metrics = {"knn_top1_k20": 81.5, "knn_top1_k20_random_init": 74.25,
               "knn_top1_k20_raw_pixels": 83.0}  # fmt: skip
    png = to_png("g", [_row(metrics, {"ks": [20]})])
    bare = to_png("g", [_row({"knn_top1_k20": 81.5}, {"ks": [20]})])
    assert png.startswith(b"\x89PNG") and png != bare  # the two lines and their legend
