"""A 2 x 2 grid with 3 seeds on a real 2-CPU Ray node (job function: tests.orchestrator.jobfns,
whose scores differ per config and seed): the summary's means, standard deviations, Welch
marks and gains equal a direct computation from the jobs' own results, the k-NN baselines
are scored by one job for the whole grid, and the grid's MLflow parent run gets the
aggregated metrics and the figure."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from mlflow import MlflowClient

from orchestrator.ablation import grid_results, welch_p
from orchestrator.db import Database
from orchestrator.models import Job
from orchestrator.schemas import GridRequest, UserView
from orchestrator.service import get_grid, grid_summary, submit_grid
from tests.orchestrator.harness import attempts_of, running_scheduler, wait_until
from tests.orchestrator.jobfns import RAW_PIXELS_SCORE, baseline_of, read_log

pytestmark = pytest.mark.usefixtures("ray_conn")

BASE = {
    "model": {"arch": "vit_custom", "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2},
    "crops": {"global_size": 16, "local_size": 8},
}
AXES = {"loss.teacher_temp": [0.04, 0.07], "crops.local_number": [0, 6]}
SEEDS = [0, 1, 2]


def _finished(db: Database, grid_id: str, alice: UserView) -> bool:
    grid = get_grid(db, alice, grid_id)
    return grid.status == "SUCCEEDED" and grid.finished_at is not None


# aggregation and identity are computed in Python over rows both backends store alike (the
# database-level behaviour is tests/orchestrator/test_db.py's, on both): SQLite only, ~20 s saved
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_by_two_grid_with_three_seeds_aggregates_and_scores_baselines_once(
    db: Database, alice: UserView, tmp_path: Path
) -> None:
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    req = GridRequest(
        name="seeds", base_config=BASE, axes=AXES, seeds=SEEDS, evals=["eval_knn"],
        tags={"t.scores": "1", "t.steps": "1", "t.step_s": "0"},
    )  # fmt: skip
    grid = submit_grid(db, alice, req)
    assert len(grid.jobs) == 4 * 3 * 2 + 1
    client = MlflowClient(tracking)
    with running_scheduler(db, mlflow_setup=True, mlflow_tracking_uri=tracking):
        wait_until(lambda: _finished(db, grid.id, alice), "the grid to end", 600)
        parent = get_grid(db, alice, grid.id).mlflow_parent_run_id or ""
        wait_until(lambda: client.get_run(parent).info.status == "FINISHED", "the parent run", 600)

    rows = grid_summary(db, alice, grid.id)
    results = grid_results(grid.name, rows)
    # the direct computation, from the jobs' own stored results
    with db.session() as s:
        jobs = {j.id: j for j in s.query(Job).filter(Job.grid_id == grid.id)}
    (base,) = [j for j in jobs.values() if j.kind == "baselines"]
    knn_of = {j.depends_on: j for j in jobs.values() if j.kind == "eval_knn"}
    per_combo: dict[int, dict[str, list[float]]] = {}
    for j in jobs.values():
        if j.kind != "pretrain":
            continue
        seed = j.config["train"]["seed"]
        knn = knn_of[j.id].result_metrics["knn_top1_k20"]
        rand = base.result_metrics[f"knn_top1_k20_random_init_seed{seed}"]
        assert rand == baseline_of(seed)
        got = per_combo.setdefault(j.combination or 0, {"knn": [], "gain": [], "loss": []})
        got["knn"].append(knn)
        got["gain"].append(knn - rand)
        got["loss"].append(j.result_metrics["loss"])
    assert len(results.table) == 4 and len(results.run_table) == 12
    means = {c: statistics.fmean(v["knn"]) for c, v in per_combo.items()}
    best = max(means, key=lambda c: means[c])
    for row in results.table:
        direct = per_combo[row["combination"]]
        assert row["n_seeds"] == 3 and row["knn_top1_n"] == 3 and row["seeds"] == "0 1 2"
        assert row["knn_top1"] == pytest.approx(statistics.fmean(direct["knn"]))
        assert row["knn_top1_std"] == pytest.approx(statistics.stdev(direct["knn"]))
        assert row["loss"] == pytest.approx(statistics.fmean(direct["loss"]))
        assert row["knn_gain"] == pytest.approx(statistics.fmean(direct["gain"]), abs=1e-3)
        assert row["knn_random_init"] == pytest.approx(statistics.fmean(map(baseline_of, SEEDS)))
        assert row["knn_raw_pixels"] == RAW_PIXELS_SCORE
        if row["combination"] == best:
            assert row["knn_top1_vs_best"] == "best"
        else:
            p = welch_p(direct["knn"], per_combo[best]["knn"])
            assert row["knn_top1_p"] == pytest.approx(p)
            assert row["knn_top1_vs_best"] == ("lower" if p < 0.05 else "~")
    # the baselines: one job for the grid, run once; no k-NN job scored its own
    assert base.status == "SUCCEEDED" and base.eval_options["seeds"] == SEEDS
    assert [a.status for a in attempts_of(db, base.id)] == ["SUCCEEDED"]
    assert [e["event"] for e in read_log(base.storage_uri)] == ["start", "end"]
    assert all(k.eval_options == {"baselines": False} for k in knn_of.values())
    (ref,) = results.baselines
    assert ref["job_id"] == base.id and ref["knn_random_init_n"] == 3
    # the parent run: aggregated metrics for the compare view, the figure and the tables
    run = client.get_run(parent)
    for row in results.table:
        c = row["combination"]
        assert run.data.metrics[f"c{c}/knn_top1"] == pytest.approx(row["knn_top1"])
        assert run.data.metrics[f"c{c}/knn_top1_std"] == pytest.approx(row["knn_top1_std"])
        assert run.data.metrics[f"c{c}/knn_top1_n"] == 3
        assert run.data.tags[f"dino.combination.c{c}"].startswith("loss.teacher_temp=")
    assert run.data.metrics["best/combination"] == best
    assert run.data.metrics["baseline/knn_raw_pixels"] == RAW_PIXELS_SCORE
    files = {f.path for f in client.list_artifacts(parent, "summary")}
    assert files == {
        "summary/summary.png",
        "summary/combinations.csv",
        "summary/runs.csv",
        "summary/baselines.csv",
    }
    png = Path(client.download_artifacts(parent, "summary/summary.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
