"""Everything a grid's summary shows, computed once from its rows: the per-run table, the
per-combination table with mean ± std and the significance marks, the baseline reference rows.

The API renders it as JSON, CSV or PNG, the CLI as a table, and the orchestrator logs it to
the grid's MLflow parent run when the grid ends (:mod:`orchestrator.mlflow_parent`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.ablation.aggregate import RULE, combination_table
from orchestrator.ablation.reference import baseline_table
from orchestrator.ablation.table import axis_columns, flat_table
from orchestrator.schemas import GridRow


@dataclass(frozen=True)
class GridResults:
    """A grid's summary: ``table`` per combination, ``run_table`` per run (seed),
    ``baselines`` per baselines job; each with its column order."""

    name: str
    rows: list[GridRow]
    axes: list[str]
    columns: list[str]
    table: list[dict[str, Any]]
    run_columns: list[str]
    run_table: list[dict[str, Any]]
    baseline_columns: list[str]
    baselines: list[dict[str, Any]]
    rule: str = RULE


def grid_results(name: str, rows: Sequence[GridRow]) -> GridResults:
    """The summary of grid ``name`` from its rows (:func:`orchestrator.service.grid_summary`)."""
    axes = axis_columns(rows)
    run_columns, run_table = flat_table(rows)
    columns, table = combination_table(run_table, axes)
    baseline_columns, baselines = baseline_table(rows)
    return GridResults(
        name=name,
        rows=list(rows),
        axes=axes,
        columns=columns,
        table=table,
        run_columns=run_columns,
        run_table=run_table,
        baseline_columns=baseline_columns,
        baselines=baselines,
    )
