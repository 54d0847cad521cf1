"""The summary figure: each score against each axis with error bars and baseline lines, a
heat map for two axes, collapsed combinations marked once, nothing drawn outside the image."""

from __future__ import annotations

import itertools
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from orchestrator.ablation import grid_results
from orchestrator.ablation.figure import build_figure, to_png
from orchestrator.schemas import EvalCell, GridRow

LONG_NAME = "fashion-mnist-temp-x-momentum-x-crops-with-a-name-longer-than-the-plot-is-wide"
BASELINE = EvalCell(
    job_id="job-b", status="SUCCEEDED", options={"seeds": [0, 1, 2]},
    metrics={"knn_top1_k20_random_init_seed0": 70.0, "knn_top1_k20_random_init_seed1": 71.0,
             "knn_top1_k20_random_init_seed2": 72.0, "knn_top1_k20_raw_pixels": 82.95},
)  # fmt: skip


def grid_rows(axes: dict[str, list[Any]], seeds: int, collapse: Any = None) -> list[GridRow]:
    """Every combination of ``axes`` x ``seeds``; runs whose first axis value is ``collapse``
    collapse (uniform) and have no k-NN score."""
    rows = []
    for c, point in enumerate(itertools.product(*axes.values())):
        values = dict(zip(axes, point, strict=True))
        for s in range(seeds):
            down = collapse is not None and point[0] == collapse
            knn = {} if down else {"knn_top1_k20": 74.0 + c + 0.3 * s}
            status = "CANCELLED" if down else "SUCCEEDED"
            evals = {"eval_knn": EvalCell(job_id=f"k{c}{s}", status=status, metrics=knn)}
            rows.append(
                GridRow(
                    combination=c,
                    seed=s,
                    job_id=f"p{c}{s}",
                    axis_values=values,
                    status="COLLAPSED" if down else "SUCCEEDED",
                    metrics={"loss": 6.0},
                    evals=evals,
                    baseline=BASELINE if seeds == 3 else None,
                    collapsed=down,
                    collapse_kind="uniform" if down else None,
                    mlflow_run_id=None,
                    step=1,
                    total_steps=1,
                    knn_k=20,
                )
            )
    return rows


def _texts(fig: Figure) -> list[Any]:
    found = list(fig.texts)
    for ax in fig.axes:
        found += [*ax.texts, ax.title]
    return [t for t in found if t.get_text()]


def _drawn(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()
    return fig


def test_two_axes_give_line_panels_and_a_heat_map_with_values() -> None:
    axes = {"loss.teacher_temp": [0.04, 0.07, 0.1], "teacher.momentum": [0.99, 0.996]}
    fig = _drawn(build_figure(grid_results(LONG_NAME, grid_rows(axes, 3, collapse=0.1))))
    images = [a for a in fig.axes if any(isinstance(i, AxesImage) for i in a.images)]
    assert len(images) == 1  # the heat map
    cells = [t.get_text() for t in images[0].texts]
    assert len(cells) == 6 and sum("± 0.3" in c for c in cells) == 4  # seeds 0.3 apart
    assert sum(c.startswith("best") for c in cells) == 1
    panels = [a for a in fig.axes if a.get_xlabel() in axes and not a.images]
    assert sorted(a.get_xlabel() for a in panels) == sorted(axes)
    for ax in panels:
        lines = {str(line.get_label()): line for line in ax.get_lines()}
        assert list(lines["random init"].get_ydata()) == [71.0, 71.0]  # mean over seeds 0-2
        assert list(lines["raw pixels"].get_ydata()) == [82.95, 82.95]
    notes = [" ".join(t.get_text().split()) for t in _texts(fig)]
    # each panel marks the collapsed combinations once, with their kind, never twice
    assert not any("collapsed (collapsed" in n for n in notes)
    assert sum("3/3 collapsed: uniform" in n for n in notes) == 2 * 2 + 2  # panels + cells


def test_nothing_is_drawn_outside_the_image() -> None:
    axes = {"loss.teacher_temp": [0.04, 0.1], "crops.local_number": [0, 4], "teacher.momentum":
            [0.99, 0.996]}  # fmt: skip
    for rows in (grid_rows(axes, 1, collapse=0.1), grid_rows({"x.y": [1]}, 3)):
        fig = _drawn(build_figure(grid_results(LONG_NAME, rows)))
        width = fig.bbox.width
        for text in [*fig.texts, *(a.title for a in fig.axes)]:
            if text.get_text():
                box = text.get_window_extent()
                assert box.x0 >= 0 and box.x1 <= width, text.get_text()
        assert LONG_NAME in fig.texts[0].get_text().replace("\n", "")


def test_three_axes_have_no_heat_map_and_one_seed_no_error_bars() -> None:
    axes = {"a.b": [1, 2], "c.d": [3, 4], "e.f": ["x", "y"]}
    fig = build_figure(grid_results("g", grid_rows(axes, 1)))
    assert not any(a.images for a in fig.axes)
    assert len([a for a in fig.axes if a.get_xlabel() in axes]) == 3
    assert to_png(grid_results("g", grid_rows(axes, 1))).startswith(b"\x89PNG")


def test_override_sets_are_drawn_side_by_side_named_by_what_they_change() -> None:
    """A grid of override sets (each changes its own fields, the rest at their defaults) is no
    product of its fields: one panel per score, a point per combination named by its set."""
    sets = [{}, {"loss.centering": "sinkhorn_knopp"}, {"loss.koleo_weight": 0.1},
            {"loss.centering": "sinkhorn_knopp", "loss.koleo_weight": 0.1}]  # fmt: skip
    fields = ["loss.centering", "loss.koleo_weight"]
    rows = [
        r.model_copy(update={"axis_values": {f: sets[r.combination].get(f) for f in fields}})
        for r in grid_rows({"x.y": [0, 1, 2, 3]}, 3)
    ]
    rows = [r for r in rows if r.combination < 3]  # not a product: no 'both' in the first three
    fig = _drawn(build_figure(grid_results("overrides", rows)))
    (panel,) = [a for a in fig.axes if a.get_xlabel() == "combination"]
    ticks = [" ".join(t.get_text().split()) for t in panel.get_xticklabels()]
    assert ticks == ["base", "centering=sinkhorn_knopp", "koleo_weight=0.1"]
    assert not [a for a in fig.axes if a.get_xlabel() in fields]
