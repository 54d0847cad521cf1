"""A grid's ablation summary: per-run rows, per-combination statistics over seeds, baseline
reference rows (:mod:`.results`), CSV (:mod:`.table`) and the figure (:mod:`.figure`)."""

from orchestrator.ablation.aggregate import ALPHA, RULE, Stat, welch_p
from orchestrator.ablation.results import GridResults, grid_results
from orchestrator.ablation.table import to_csv

__all__ = ["ALPHA", "RULE", "GridResults", "Stat", "grid_results", "to_csv", "welch_p"]
