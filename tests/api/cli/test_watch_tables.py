"""The ablation table ``dino grid show`` prints (api/cli/watch.py): what it shows and folds."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from api.cli.watch import summary_table

COLUMNS = ["combination", "loss.teacher_temp", "status", "n_seeds", "seeds"]
COLUMNS += ["knn_top1", "knn_top1_std", "knn_top1_n", "knn_top1_p", "knn_top1_vs_best", "knn_k"]


def _row(temp: float, seeds: list[int], mean: float, std: float | None) -> dict[str, Any]:
    return {
        "combination": int(temp * 100),
        "loss.teacher_temp": temp,
        "status": "SUCCEEDED",
        "n_seeds": len(seeds),
        "seeds": " ".join(map(str, seeds)),
        "knn_top1": mean,
        "knn_top1_std": std,
        "knn_top1_n": len(seeds),
        "knn_top1_p": None,
        "knn_top1_vs_best": None,
        "knn_k": 20,
    }


def _render(rows: list[dict[str, Any]]) -> str:
    console = Console(record=True, width=300)
    summary = {"grid_id": "grid-1", "name": "g", "status": "FINISHED"}
    console.print(summary_table({**summary, "columns": COLUMNS, "table": rows}))
    return console.export_text()


def test_one_seed_grids_leave_out_the_seed_columns() -> None:
    text = _render([_row(0.04, [0], 77.05, None), _row(0.07, [0], 76.5, None)])
    header = text.splitlines()[2]
    assert "knn_top1" in header and "loss.teacher_temp" in header
    assert "n_seeds" not in header and "seeds" not in header
    assert "77.05" in text and "±" not in text


def test_seeded_grids_show_seeds_and_the_spread() -> None:
    text = _render([_row(0.04, [0, 1], 77.0, 0.5), _row(0.07, [0, 1], 76.0, 0.25)])
    header = text.splitlines()[2]
    assert "n_seeds" in header and "seeds" in header
    assert "77 ± 0.5" in text and "0 1" in text
