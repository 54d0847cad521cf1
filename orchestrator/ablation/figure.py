"""The summary figure of a grid: each score against each axis, and a heat map for two axes.

A grid of override sets (combinations that are no product of the fields they vary) gets one
panel per score instead, its combinations side by side, each named by the fields it sets.

One row of panels per score the grid measured (k-NN top-1, linear top-1, attention IoU; the
final loss when it measured none), one panel per axis that varies: the score's mean over the
seeds against the axis value, one line per value of the other axes (set a little apart, so
their error bars do not hide each other), error bars of ± the sample standard deviation. k-NN
panels carry the baselines as horizontal lines (random init dotted, with a ± std band over
its seeds; raw pixels dashed). With exactly two varying axes a heat map of the first score
follows, its mean ± std printed in each cell with the best combination named and the others'
Welch p against it (``*``: p < 0.05, :mod:`.aggregate`). A combination whose runs did not all
succeed is marked with its status (collapsed with its kind, stopped early, failed): a red
cross at the bottom of the panel when no run has a score, a red ring round the point when
only some have.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from orchestrator.ablation.aggregate import ALPHA, BEST
from orchestrator.ablation.results import GridResults
from worker.contracts import COLLAPSED, SUCCEEDED

SCORES = ("knn_top1", "linear_top1", "attn_iou")
LABELS = {
    "knn_top1": "k-NN top-1 (%)",
    "linear_top1": "linear top-1 (%)",
    "attn_iou": "attention IoU (mean map)",
    "loss": "final loss",
}
MARK = "#c0392b"


def _order(value: Any) -> tuple[int, float, str]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _short(field: str) -> str:
    return field.rsplit(".", 1)[-1]


def _notes(results: GridResults) -> dict[int, tuple[str, bool]]:
    """combination -> (what did not succeed, whether any of its runs has no score)."""
    runs: dict[int, list[Mapping[str, Any]]] = {}
    for r in results.run_table:
        runs.setdefault(int(r["combination"]), []).append(r)
    notes: dict[int, tuple[str, bool]] = {}
    for c, rs in runs.items():
        parts = []
        for status in dict.fromkeys(str(r["status"]) for r in rs):
            if status == SUCCEEDED:
                continue
            n = sum(1 for r in rs if r["status"] == status)
            count = f"{n}/{len(rs)} " if len(rs) > 1 else ""
            what = status.lower().replace("_", " ")
            kinds = {str(r["collapse_kind"]) for r in rs if r["status"] == status}
            if status == COLLAPSED and kinds - {"None"}:
                what += ": " + ", ".join(sorted(kinds - {"None"}))
            parts.append(f"{count}{what}")
        if parts:
            notes[c] = ("; ".join(parts), any(r["status"] != SUCCEEDED for r in rs))
    return notes


def _scores(results: GridResults) -> list[str]:
    found = [m for m in SCORES if any(row.get(m) is not None for row in results.table)]
    return found or ["loss"]


def _varying(results: GridResults) -> list[str]:
    return [a for a in results.axes if len({repr(r.get(a)) for r in results.table}) > 1]


def _baselines(ax: Any, results: GridResults) -> None:
    refs = results.baselines or [
        {
            "knn_random_init": _mean([r.get("knn_random_init") for r in results.table]),
            "knn_random_init_std": None,
            "knn_raw_pixels": _mean([r.get("knn_raw_pixels") for r in results.table]),
        }
    ]
    for ref in refs:
        tag = ", ".join(f"{_short(k)}={v}" for k, v in ref.items() if "." in k and len(refs) > 1)
        rand, std, raw = (
            ref.get("knn_random_init"),
            ref.get("knn_random_init_std"),
            ref.get("knn_raw_pixels"),
        )
        if rand is not None:
            ax.axhline(rand, ls=":", color="grey", label=f"random init {tag}".strip())
            if std:
                ax.axhspan(rand - std, rand + std, color="grey", alpha=0.12, lw=0)
        if raw is not None:
            ax.axhline(raw, ls="--", color="dimgrey", label=f"raw pixels {tag}".strip())


def _mean(values: Sequence[Any]) -> float | None:
    nums = [float(v) for v in values if isinstance(v, int | float)]
    return sum(nums) / len(nums) if nums else None


def _panel(
    ax: Any, results: GridResults, metric: str, axis: str | None, varying: list[str]
) -> None:
    notes = _notes(results)
    table = results.table
    if axis is None:  # no product of axes: the combinations side by side, named
        xs_of = {id(r): i for i, r in enumerate(table)}
        ticks = [_combination_label(r, varying) for r in table]
        others: list[str] = []
        lines: dict[tuple[Any, ...], list[dict[str, Any]]] = {(): list(table)}
    else:
        values = sorted({repr(r.get(axis)): r.get(axis) for r in table}.values(), key=_order)
        pos = {repr(v): i for i, v in enumerate(values)}
        xs_of = {id(r): pos[repr(r.get(axis))] for r in table}
        ticks = [str(v) for v in values]
        others = [b for b in varying if b != axis]
        lines = {}
        for r in table:
            lines.setdefault(tuple(r.get(b) for b in others), []).append(r)
    for n, (key, members) in enumerate(lines.items()):
        label = ", ".join(f"{_short(b)}={v}" for b, v in zip(others, key, strict=True))
        dodge = (n - (len(lines) - 1) / 2) * min(0.08, 0.3 / len(lines))  # bars side by side
        pts = [
            (xs_of[id(r)] + dodge, r[metric], r.get(f"{metric}_std") or 0.0, r)
            for r in members
            if r.get(metric) is not None
        ]
        if pts:
            ax.errorbar(
                [p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                marker="o", ms=5, capsize=3, lw=1.4, label=label or None,
                ls="-" if axis else "none",  # no line across unrelated combinations
            )  # fmt: skip
            for x, y, _, r in pts:
                note = notes.get(int(r["combination"]))
                if note:
                    ax.plot([x], [y], "o", ms=11, mfc="none", mec=MARK, mew=1.5)
                    ax.annotate(
                        note[0],
                        (x, y),
                        xytext=(4, -10),
                        textcoords="offset points",
                        fontsize=6.5,
                        color=MARK,
                    )
        for r in members:
            note = notes.get(int(r["combination"]))
            if r.get(metric) is None and note:
                x = xs_of[id(r)]
                ax.plot(
                    [x],
                    [0.04],
                    "X",
                    ms=9,
                    color=MARK,
                    transform=ax.get_xaxis_transform(),
                    clip_on=False,
                )
                ax.annotate(
                    note[0],
                    (x, 0.04),
                    xycoords=ax.get_xaxis_transform(),
                    xytext=(6, -3),
                    textcoords="offset points",
                    fontsize=6.5,
                    color=MARK,
                )
    if metric == "knn_top1":
        _baselines(ax, results)
    ax.set_xticks(range(len(ticks)), ticks, fontsize=8)
    ax.set_xlim(-0.5, len(ticks) - 0.5)
    ax.set_xlabel(axis or "combination", fontsize=8)
    ax.set_ylabel(_label(metric, results), fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6.5, loc="best")


def _combination_label(row: Mapping[str, Any], varying: list[str]) -> str:
    """What a combination sets, a field a line (``base`` when it sets none of them);
    ``#<n>`` when nothing varies."""
    if not varying:
        return f"#{row['combination']}"
    parts = [f"{_short(f)}={row.get(f)}" for f in varying if row.get(f) is not None]
    return "\n".join(parts) or "base"


def _is_product(results: GridResults, varying: list[str]) -> bool:
    """Whether the combinations are every product of the varying fields' values (axes), as
    opposed to override sets that each change some fields."""
    sizes = [len({repr(r.get(a)) for r in results.table}) for a in varying]
    return math.prod(sizes) == len(results.table)


def _label(metric: str, results: GridResults) -> str:
    label = LABELS.get(metric, metric)
    if metric == "knn_top1":
        ks = sorted({int(r["knn_k"]) for r in results.table if r.get("knn_k") is not None})
        label += f", k={'/'.join(str(k) for k in ks)}" if ks else ""
    return label


def _heatmap(ax: Any, results: GridResults, metric: str, rows_axis: str, cols_axis: str) -> bool:
    """Mean ± std of ``metric`` in a cell per (rows_axis, cols_axis) value; False when the
    combinations do not form such a grid (override sets put several in one cell)."""
    import numpy as np

    table = results.table
    rv = sorted({repr(r.get(rows_axis)): r.get(rows_axis) for r in table}.values(), key=_order)
    cv = sorted({repr(r.get(cols_axis)): r.get(cols_axis) for r in table}.values(), key=_order)
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for r in table:
        at = (
            [repr(v) for v in rv].index(repr(r.get(rows_axis))),
            [repr(v) for v in cv].index(repr(r.get(cols_axis))),
        )
        if at in cells:
            return False
        cells[at] = r
    grid = np.full((len(rv), len(cv)), np.nan)
    for (i, j), r in cells.items():
        if r.get(metric) is not None:
            grid[i, j] = float(r[metric])
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    finite = grid[np.isfinite(grid)]
    mid = float(finite.mean()) if finite.size else 0.0
    notes = _notes(results)
    for (i, j), r in cells.items():
        value, std = r.get(metric), r.get(f"{metric}_std")
        text = "-" if value is None else f"{value:.4g}" + (f"\n± {std:.2g}" if std else "")
        note = notes.get(int(r["combination"]))
        if note:
            text += "\n" + textwrap.fill(note[0], 18)
        p = r.get(f"{metric}_p")
        if r.get(f"{metric}_vs_best") == BEST:
            text = "best\n" + text
        elif p is not None:
            text += f"\np={p:.2g} vs best" + (" *" if p < ALPHA else "")
        dark = value is not None and float(value) < mid
        ax.text(
            j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black"
        )
    ax.set_xticks(range(len(cv)), [str(v) for v in cv], fontsize=8)
    ax.set_yticks(range(len(rv)), [str(v) for v in rv], fontsize=8)
    ax.set_xlabel(cols_axis, fontsize=8)
    ax.set_ylabel(rows_axis, fontsize=8)
    ax.set_title(_label(metric, results) + ": mean ± std over seeds", fontsize=9)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return True


def build_figure(results: GridResults) -> Figure:
    """The figure (see the module docstring), drawn with matplotlib's Agg backend."""
    scores = _scores(results)
    varying = _varying(results)
    product = _is_product(results, varying)
    axes: list[str | None] = list(varying) if varying and product else [None]
    heat = product and len(varying) == 2
    nrows, ncols = len(scores) + (1 if heat else 0), len(axes)
    width = max(4.6 * ncols, 6.4) if product else max(6.4, 1.6 * len(results.table))
    fig = Figure(figsize=(width, 3.4 * nrows + 0.9), dpi=100, layout="constrained")
    grid = fig.add_gridspec(nrows, ncols)
    for i, metric in enumerate(scores):
        for j, axis in enumerate(axes):
            _panel(fig.add_subplot(grid[i, j]), results, metric, axis, varying)
    if heat:
        ax = fig.add_subplot(grid[-1, :])
        if not _heatmap(ax, results, scores[0], varying[0], varying[1]):
            ax.remove()
    n = sorted({int(r["n_seeds"]) for r in results.table}) or [0]
    seeds = f"{'/'.join(str(k) for k in n)} seed(s) per combination"
    what = ", ".join(LABELS[m] for m in scores)
    title = f"grid {results.name}: {what} per axis ({seeds}; error bars ± sample std)"
    fig.suptitle(textwrap.fill(title, width=int(width * 13)), fontsize=10)
    return fig


def to_png(results: GridResults) -> bytes:
    """:func:`build_figure` as PNG bytes."""
    buf = io.BytesIO()
    build_figure(results).savefig(buf, format="png")
    return buf.getvalue()
