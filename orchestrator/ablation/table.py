"""The per-run ablation table of a grid: one flat row per pretraining run (combination x seed).

Columns: ``combination``, one per axis (dotted field), ``seed`` (its ``train.seed``),
``status``, the final training ``loss`` and ``teacher_entropy``, ``knn_top1`` (weighted k-NN
top-1 of the trained teacher, paper Sec. 4.1, from the ``eval_knn`` job; else the last
in-training k-NN), ``knn_k``, the k it was measured at (the config's ``eval.knn_k``, paper 20,
unless the evaluation was asked for other ``ks`` only: then the first of them),
``knn_random_init`` and ``knn_raw_pixels`` (the same evaluation of the architecture at the
random init this run started from, and of raw pixels: from the grid's ``baselines`` job, or
from the run's own k-NN job in grids without one), ``knn_gain`` (trained minus random init),
``linear_top1``, ``attn_iou``, ``collapsed``, ``collapse_kind``, ``stopped_at_epoch`` and
``stop_value`` (early stopping: the rung epoch that stopped the run and its combination's seed
mean there; its ``knn_top1`` is then the in-training k-NN at that rung), ``reused_from`` (the
SUCCEEDED job whose results this run reuses), ``job_id``, ``mlflow_run_id``.
:mod:`orchestrator.ablation.aggregate` turns these rows into one row per combination with
mean, std and n.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from dino_core.eval.metric_names import RANDOM_INIT, RAW_PIXELS, knn_metric
from orchestrator.schemas import GridRow

FIXED_HEAD = ["combination"]
FIXED_TAIL = [
    "seed",
    "status",
    "loss",
    "teacher_entropy",
    "knn_top1",
    "knn_k",
    "knn_random_init",
    "knn_raw_pixels",
    "knn_gain",
    "linear_top1",
    "attn_iou",
    "collapsed",
    "collapse_kind",
    "stopped_at_epoch",
    "stop_value",
    "reused_from",
    "job_id",
    "mlflow_run_id",
]


def number(metrics: Mapping[str, Any], key: str) -> float | None:
    """``metrics[key]`` as a float, or None when absent or not a number."""
    value = metrics.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def reported_k(row: GridRow) -> int:
    """The k of the eval_knn job's top-1 in the table: the config's ``eval.knn_k`` (paper
    20) when the job measured it, else the first of the ``ks`` it was asked for."""
    cell = row.evals.get("eval_knn")
    ks = cell.options.get("ks") if cell is not None else None
    if isinstance(ks, list) and ks and row.knn_k not in ks:
        return int(ks[0])
    return row.knn_k


def final_knn(row: GridRow) -> tuple[float | None, int]:
    """k-NN top-1 and its k: the eval_knn job's, else the last in-training k-NN (measured at
    ``eval.knn_k``), else None."""
    cell = row.evals.get("eval_knn")
    if cell is not None:
        k = reported_k(row)
        found = number(cell.metrics, knn_metric("top1", k))
        if found is not None:
            return found, k
    return number(row.metrics, knn_metric("top1", row.knn_k)), row.knn_k


def knn_baselines(row: GridRow) -> tuple[float | None, float | None]:
    """k-NN top-1 of the architecture at this run's random init and of raw pixels, at the k
    of :func:`final_knn`: from the grid's baselines job (random init at the run's seed), else
    from the run's eval_knn job, which then scored both beside the trained teacher."""
    k = reported_k(row)
    if row.baseline is not None:
        metrics = row.baseline.metrics
        return (
            number(metrics, knn_metric("top1", k, RANDOM_INIT, row.seed)),
            number(metrics, knn_metric("top1", k, RAW_PIXELS)),
        )
    cell = row.evals.get("eval_knn")
    if cell is None:
        return None, None
    return (
        number(cell.metrics, knn_metric("top1", k, RANDOM_INIT)),
        number(cell.metrics, knn_metric("top1", k, RAW_PIXELS)),
    )


def _metric(row: GridRow, kind: str, key: str) -> float | None:
    cell = row.evals.get(kind)
    return number(cell.metrics, key) if cell is not None else None


def axis_columns(rows: Sequence[GridRow]) -> list[str]:
    """Axis (and override) fields in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.axis_values:
            seen.setdefault(key, None)
    return list(seen)


def cell_value(value: Any) -> Any:
    """A table cell: JSON scalars as they are, anything else as its text."""
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def flat_table(rows: Sequence[GridRow]) -> tuple[list[str], list[dict[str, Any]]]:
    """The column order and one flat dict per pretraining run."""
    axes = axis_columns(rows)
    columns = FIXED_HEAD + axes + FIXED_TAIL
    table = []
    for row in rows:
        knn, k = final_knn(row)
        rand, raw = knn_baselines(row)
        flat: dict[str, Any] = {"combination": row.combination}
        flat.update({a: cell_value(row.axis_values.get(a)) for a in axes})
        flat.update(
            seed=row.seed,
            status=row.status,
            loss=number(row.metrics, "loss"),
            teacher_entropy=number(row.metrics, "teacher_entropy"),
            knn_top1=knn,
            knn_k=k,
            knn_random_init=rand,
            knn_raw_pixels=raw,
            knn_gain=None if knn is None or rand is None else round(knn - rand, 4),
            linear_top1=_metric(row, "eval_linear", "linear_final_top1"),
            attn_iou=_metric(row, "eval_attention", "attn_iou_mean_map"),
            collapsed=row.collapsed,
            collapse_kind=row.collapse_kind,
            stopped_at_epoch=row.stopped_at_epoch,
            stop_value=row.stop_value,
            reused_from=row.reused_from,
            job_id=row.job_id,
            mlflow_run_id=row.mlflow_run_id,
        )
        table.append(flat)
    return columns, table


def to_csv(columns: Sequence[str], table: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return out.getvalue()
