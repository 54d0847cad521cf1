"""The reference rows of a grid: its baselines jobs, one per architecture and data.

Each row holds the k-NN top-1 of the architecture at random init (mean, sample std and n over
the seeds the job drew: the seeds the grid's runs start from) and of raw pixels, at the k the
table reports, beside the axis values that decide the baseline (``model.*``, ``data.*`` ...,
:mod:`dino_core.eval.baseline_key`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dino_core.eval.baseline_key import decides_baseline
from dino_core.eval.metric_names import RANDOM_INIT, RAW_PIXELS, knn_metric
from orchestrator.ablation.aggregate import Stat
from orchestrator.ablation.table import cell_value, number, reported_k
from orchestrator.schemas import GridRow

TAIL = [
    "status",
    "seeds",
    "knn_k",
    "knn_random_init",
    "knn_random_init_std",
    "knn_random_init_n",
    "knn_raw_pixels",
    "job_id",
]


def baseline_table(rows: Sequence[GridRow]) -> tuple[list[str], list[dict[str, Any]]]:
    """The column order and one row per baselines job that the runs in ``rows`` point at."""
    table: dict[str, dict[str, Any]] = {}
    fields: dict[str, None] = {}
    for row in rows:
        cell = row.baseline
        if cell is None or cell.job_id in table:
            continue
        k = reported_k(row)
        seeds = [int(s) for s in cell.options.get("seeds") or [row.seed]]
        drawn = [number(cell.metrics, knn_metric("top1", k, RANDOM_INIT, s)) for s in seeds]
        stat = Stat.of([v for v in drawn if v is not None])
        values = {a: cell_value(v) for a, v in row.axis_values.items() if decides_baseline(a)}
        fields.update(dict.fromkeys(values))
        table[cell.job_id] = {
            **values,
            "status": cell.status,
            "seeds": " ".join(str(s) for s in seeds),
            "knn_k": k,
            "knn_random_init": stat.mean,
            "knn_random_init_std": stat.std,
            "knn_random_init_n": stat.n,
            "knn_raw_pixels": number(cell.metrics, knn_metric("top1", k, RAW_PIXELS)),
            "job_id": cell.job_id,
        }
    return [*fields, *TAIL], list(table.values())
