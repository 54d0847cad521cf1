"""The per-run ablation table: the configured k of the k-NN (paper: 20), named; the baselines
from the grid's baselines job (random init at the run's own seed) or the run's own k-NN job."""

from __future__ import annotations

from typing import Any

from orchestrator.ablation.table import flat_table, to_csv
from orchestrator.schemas import EvalCell, GridRow


def row(
    knn_metrics: dict[str, Any] | None,
    options: dict[str, Any],
    knn_k: int = 20,
    *,
    seed: int = 0,
    baseline: EvalCell | None = None,
    **metrics: Any,
) -> GridRow:
    evals = {}
    if knn_metrics is not None:
        cell = EvalCell(job_id="job-e", status="SUCCEEDED", metrics=knn_metrics, options=options)
        evals["eval_knn"] = cell
    return GridRow(
        combination=0, seed=seed, job_id="job-p", axis_values={}, status="SUCCEEDED",
        metrics=metrics, evals=evals, baseline=baseline, collapsed=False, collapse_kind=None,
        mlflow_run_id=None, step=None, total_steps=None, knn_k=knn_k,
    )  # fmt: skip


def _knn(r: GridRow) -> tuple[Any, Any]:
    columns, table = flat_table([r])
    assert columns.index("knn_k") == columns.index("knn_top1") + 1
    return table[0]["knn_top1"], table[0]["knn_k"]


def test_the_configured_k_is_shown_and_named() -> None:
    both = {"knn_top1_k10": 50.0, "knn_top1_k20": 60.0, "knn_top1_k100": 70.0}
    assert _knn(row(both, {"ks": [10, 20]})) == (60.0, 20)
    assert _knn(row(both, {"ks": [20, 100]})) == (60.0, 20)
    assert _knn(row(both, {"ks": [100, 10]})) == (70.0, 100)  # k=20 not run: the first asked
    assert _knn(row({"knn_top1_k5": 40.0}, {}, knn_k=5)) == (40.0, 5)  # eval.knn_k of the config
    # no eval_knn job: the last in-training k-NN, which uses eval.knn_k
    assert _knn(row(None, {}, knn_k=5, knn_top1_k20=1.0, knn_top1_k5=33.0)) == (33.0, 5)
    assert _knn(row(None, {})) == (None, 20)
    columns, table = flat_table([row(both, {"ks": [10, 20]})])
    assert "knn_top1,knn_k" in to_csv(columns, table).splitlines()[0]


def test_rows_carry_both_baselines_and_the_gain_over_random_init() -> None:
    metrics = {"knn_top1_k20": 81.5, "knn_top1_k20_random_init": 74.25,
               "knn_top1_k20_raw_pixels": 83.0, "knn_top1_k10_random_init": 1.0}  # fmt: skip
    _, table = flat_table([row(metrics, {"ks": [20]})])
    r = table[0]
    assert (r["knn_random_init"], r["knn_raw_pixels"], r["knn_gain"]) == (74.25, 83.0, 7.25)
    _, table = flat_table([row(None, {}, knn_top1_k20=60.0)])  # no eval job: no baselines
    assert (table[0]["knn_random_init"], table[0]["knn_gain"]) == (None, None)


def test_the_grid_baselines_job_gives_random_init_at_the_runs_own_seed() -> None:
    base = EvalCell(
        job_id="job-b", status="SUCCEEDED", options={"ks": [10], "seeds": [0, 1]},
        metrics={"knn_top1_k10_random_init_seed0": 20.0, "knn_top1_k10_random_init_seed1": 22.5,
                 "knn_top1_k10_raw_pixels": 40.0},
    )  # fmt: skip
    runs = [
        row({"knn_top1_k10": 50.0}, {"ks": [10], "baselines": False}, seed=s, baseline=base)
        for s in (0, 1)
    ]
    _, table = flat_table(runs)
    assert [(r["seed"], r["knn_random_init"], r["knn_raw_pixels"]) for r in table] == [
        (0, 20.0, 40.0),
        (1, 22.5, 40.0),
    ]
    assert [r["knn_gain"] for r in table] == [30.0, 27.5]
