"""The ablation table of a grid: flat rows, CSV, and a PNG bar chart of the final k-NN.

Columns: ``combination``, one per axis (dotted field), ``status``, the final training
``loss``, ``knn_top1`` (weighted k-NN top-1 of the trained teacher, paper Sec. 4.1, from the
``eval_knn`` job; else the last in-training k-NN), ``knn_random_init`` and ``knn_raw_pixels``
(the same evaluation of the architecture at random init and of raw pixels, which the eval job
scores beside it), ``knn_gain`` (trained minus random init) and ``knn_k``, the k it was measured at
(the config's ``eval.knn_k``, paper 20, unless the evaluation was asked for other ``ks``
only: then the first of them), ``linear_top1``, ``attn_iou``, ``collapsed``, ``job_id``,
``mlflow_run_id``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.schemas import GridRow

FIXED_HEAD = ["combination"]
FIXED_TAIL = [
    "status",
    "loss",
    "knn_top1",
    "knn_k",
    "knn_random_init",
    "knn_raw_pixels",
    "knn_gain",
    "linear_top1",
    "attn_iou",
    "collapsed",
    "job_id",
    "mlflow_run_id",
]


def _number(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return float(value) if isinstance(value, int | float) else None


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
        found = _number(cell.metrics, f"knn_top1_k{k}")
        if found is not None:
            return found, k
    return _number(row.metrics, f"knn_top1_k{row.knn_k}"), row.knn_k


def knn_baselines(row: GridRow) -> tuple[float | None, float | None]:
    """k-NN top-1 of the same architecture at random init and of raw pixels, at the k of
    :func:`final_knn`, from the eval_knn job (which scores both beside the trained teacher)."""
    cell = row.evals.get("eval_knn")
    if cell is None:
        return None, None
    k = reported_k(row)
    return (
        _number(cell.metrics, f"knn_top1_k{k}_random_init"),
        _number(cell.metrics, f"knn_top1_k{k}_raw_pixels"),
    )


def _metric(row: GridRow, kind: str, key: str) -> float | None:
    cell = row.evals.get(kind)
    value = cell.metrics.get(key) if cell is not None else None
    return float(value) if isinstance(value, int | float) else None


def axis_columns(rows: Sequence[GridRow]) -> list[str]:
    """Axis (and override) fields in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.axis_values:
            seen.setdefault(key, None)
    return list(seen)


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def flat_table(rows: Sequence[GridRow]) -> tuple[list[str], list[dict[str, Any]]]:
    """The column order and one flat dict per combination."""
    axes = axis_columns(rows)
    columns = FIXED_HEAD + axes + FIXED_TAIL
    table = []
    for row in rows:
        loss = row.metrics.get("loss")
        knn, k = final_knn(row)
        rand, raw = knn_baselines(row)
        flat: dict[str, Any] = {"combination": row.combination}
        flat.update({k: _cell(row.axis_values.get(k)) for k in axes})
        flat.update(
            status=row.status,
            loss=float(loss) if isinstance(loss, int | float) else None,
            knn_top1=knn,
            knn_k=k,
            knn_random_init=rand,
            knn_raw_pixels=raw,
            knn_gain=None if knn is None or rand is None else round(knn - rand, 2),
            linear_top1=_metric(row, "eval_linear", "linear_final_top1"),
            attn_iou=_metric(row, "eval_attention", "attn_iou_mean_map"),
            collapsed=row.collapsed,
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


def _label(row: GridRow) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in row.axis_values.items()]
    return ", ".join(parts) or f"#{row.combination}"


def to_png(name: str, rows: Sequence[GridRow]) -> bytes:
    """Horizontal bars of the final k-NN top-1 per combination (missing: empty, labelled)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = [_label(r) for r in rows]
    found = [final_knn(r) for r in rows]
    values = [v for v, _ in found]
    ks = "/".join(str(k) for k in sorted({k for _, k in found})) or "-"
    fig = Figure(figsize=(7.0, 1.2 + 0.45 * max(len(rows), 1)), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ys = list(range(len(rows)))
    ax.barh(ys, [v if v is not None else 0.0 for v in values], color="#4c72b0")
    for y, v, r in zip(ys, values, rows, strict=True):
        note = f"{v:.1f}" if v is not None else r.status.lower()
        if r.collapsed:
            note += f" (collapsed: {r.collapse_kind or '?'})"
        ax.text(v or 0.0, y, f" {note}", va="center", fontsize=8)
    for baseline, style, label in ((0, ":", "random init"), (1, "--", "raw pixels")):
        level = [v for v in (knn_baselines(r)[baseline] for r in rows) if v is not None]
        if level:  # the same split for every combination of a grid: one line each
            ax.axvline(sum(level) / len(level), ls=style, color="grey", label=label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    top = max([v for v in values if v is not None] or [1.0])
    ax.set_xlim(0, top * 1.25)
    ax.set_xlabel(f"weighted k-NN top-1 (%) of the teacher, k={ks}")
    ax.set_title(f"grid {name}: final k-NN per combination", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
