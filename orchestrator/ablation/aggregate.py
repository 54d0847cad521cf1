"""One row per combination: mean, standard deviation and n over its seeds, and which
differences from the best combination exceed the seed spread.

Every metric of :data:`METRICS` gets three columns: ``<m>`` (the mean over the seeds that
have a value), ``<m>_std`` (sample standard deviation, n - 1 in the denominator; None for
n < 2) and ``<m>_n``. The metrics where higher is better (:data:`TESTED`) also get ``<m>_p``
and ``<m>_vs_best`` by the rule :data:`RULE`: Welch's two-sided t-test of the combination's
per-seed values against those of the best combination (highest mean); ``best``, ``lower``
(p < :data:`ALPHA`), ``~`` (p >= :data:`ALPHA`: within the seed spread) or None (either has
fewer than 2 values: untested). No correction for multiple comparisons is made.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

METRICS: Final = (
    "loss",
    "teacher_entropy",
    "knn_top1",
    "knn_random_init",
    "knn_raw_pixels",
    "knn_gain",
    "linear_top1",
    "attn_iou",
)
TESTED: Final = ("knn_top1", "linear_top1", "attn_iou")  # higher is better
ALPHA: Final = 0.05
BEST, LOWER, WITHIN = "best", "lower", "~"
RULE: Final = (
    f"mean ± sample std over seeds (n); '{LOWER}': below the best combination (highest mean) "
    f"by more than the seed spread, Welch's two-sided t-test p < {ALPHA} (no multiple-"
    f"comparison correction); '{WITHIN}': p >= {ALPHA}; untested with fewer than 2 seeds each"
)
HEAD: Final = ("combination",)


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (None for n < 2) and n of some values."""

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        if not values:
            return cls(None, None, 0)
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(statistics.fmean(values), std, len(values))


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of Welch's t-test (unequal variances) of ``a`` against ``b`` (each n >= 2).
    With no spread in either sample the difference is exact: p = 0 if the means differ, else 1."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's t-test needs 2 or more values each, got {len(a)} and {len(b)}")
    if statistics.variance(a) == 0 and statistics.variance(b) == 0:
        return 1.0 if statistics.fmean(a) == statistics.fmean(b) else 0.0
    from scipy import stats  # ~1 s to import: only when a test is made

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _status(statuses: Sequence[str]) -> str:
    counts = Counter(statuses)
    if len(counts) == 1:
        return statuses[0]
    return ", ".join(f"{n} {s}" for s, n in counts.most_common())


def columns_for(axes: Sequence[str]) -> list[str]:
    """The column order of :func:`combination_table`."""
    cols = [*HEAD, *axes, "status", "n_seeds", "seeds"]
    for m in METRICS:
        cols += [m, f"{m}_std", f"{m}_n"]
        if m in TESTED:
            cols += [f"{m}_p", f"{m}_vs_best"]
    return [*cols, "knn_k", "collapsed", "collapse_kind", "stopped_at_epoch", "stop_value"]


def _values(runs: Sequence[Mapping[str, Any]], metric: str) -> list[float]:
    return [float(r[metric]) for r in runs if isinstance(r.get(metric), int | float)]


def _mark(table: list[dict[str, Any]], samples: list[dict[str, list[float]]]) -> None:
    for m in TESTED:
        scored = [i for i, row in enumerate(table) if row[m] is not None]
        if not scored:
            continue
        best = max(scored, key=lambda i: float(table[i][m]))
        for i in scored:
            a, b = samples[i][m], samples[best][m]
            p = None if i == best or len(a) < 2 or len(b) < 2 else welch_p(a, b)
            table[i][f"{m}_p"] = p
            if i == best:
                table[i][f"{m}_vs_best"] = BEST
            elif p is not None:
                table[i][f"{m}_vs_best"] = LOWER if p < ALPHA else WITHIN


def combination_table(
    run_table: Sequence[Mapping[str, Any]], axes: Sequence[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows of :func:`orchestrator.ablation.table.flat_table` (one per run) grouped by
    ``combination``, in order of first appearance."""
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for run in run_table:
        groups.setdefault(int(run["combination"]), []).append(run)
    table: list[dict[str, Any]] = []
    samples: list[dict[str, list[float]]] = []
    for index, runs in groups.items():
        first = runs[0]
        row: dict[str, Any] = {"combination": index, **{a: first.get(a) for a in axes}}
        kinds = sorted({str(r["collapse_kind"]) for r in runs if r.get("collapse_kind")})
        row.update(
            status=_status([str(r["status"]) for r in runs]),
            n_seeds=len(runs),
            seeds=" ".join(str(r["seed"]) for r in runs),
            knn_k=first.get("knn_k"),
            collapsed=sum(1 for r in runs if r.get("collapsed")),
            collapse_kind=", ".join(kinds) or None,
            stopped_at_epoch=first.get("stopped_at_epoch"),
            stop_value=first.get("stop_value"),
        )
        values = {m: _values(runs, m) for m in METRICS}
        for m in METRICS:
            stat = Stat.of(values[m])
            row.update({m: stat.mean, f"{m}_std": stat.std, f"{m}_n": stat.n})
            if m in TESTED:
                row.update({f"{m}_p": None, f"{m}_vs_best": None})
        table.append(row)
        samples.append(values)
    _mark(table, samples)
    return columns_for(axes), table
