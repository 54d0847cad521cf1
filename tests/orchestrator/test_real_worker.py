"""The scheduler running real tiny DINO jobs (``worker.run.run_job``) with a real MLflow store."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from orchestrator.ablation import grid_results
from orchestrator.db import Database
from orchestrator.schemas import GridRequest, UserView
from orchestrator.service import get_grid, grid_summary, submit_grid
from tests.orchestrator.harness import (
    attempts_of,
    events_of,
    job_row,
    running_scheduler,
    wait_until,
)
from tests.tiny import tiny_dict
from worker.mlflow_run import TAG_JOB

# The worker contract (MLflow runs, checkpoints, resume) does not depend on the database
# backend, which every other scheduler test covers on both; real jobs cost ~10 s of imports
# each on 2 cores, so these run on SQLite only.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("ray_conn"),
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


def tiny(**train: Any) -> dict[str, Any]:
    """vit_custom depth 2, width 32, patch 4; synthetic 16/8 px crops; K = 64."""
    return tiny_dict(
        warmup_epochs=1, synthetic_size=32, train={"epochs": 1, "log_every_steps": 1, **train}
    )


@pytest.fixture
def tracking(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_grid_of_four_real_jobs_one_killed_and_resumed(
    db: Database, alice: UserView, tracking: str
) -> None:
    """Four tiny DINO runs under one MLflow parent run; the process of one of them is
    SIGKILLed after its first checkpoint and the retry resumes it in the same MLflow run.
    (Two axes are enough for the worker contract: grid expansion over three axes is the
    fake-job scheduler tests'; each real job costs ~10 s of imports on 2 cores.)"""
    base = tiny(epochs=4, checkpoint_every_steps=2)
    base["data"]["synthetic_size"] = 64  # 4 steps per epoch, 16 in all
    axes = {"teacher.momentum": [0.99, 0.996], "crops.local_number": [0, 2]}
    grid = submit_grid(db, alice, GridRequest(name="real4", base_config=base, axes=axes, evals=[]))
    victim = next(j.id for j in grid.jobs if j.combination == 0)
    with running_scheduler(
        db,
        job_fn="worker.run:run_job",
        mlflow_setup=True,
        mlflow_tracking_uri=tracking,
        backoff_base_s=0.1,
    ):
        wait_until(lambda: events_of(db, victim, "checkpoint"), "a first checkpoint", 300)
        (placed,) = events_of(db, victim, "placed")
        os.kill(int(placed.data["pid"]), signal.SIGKILL)
        wait_until(lambda: get_grid(db, alice, grid.id).status == "SUCCEEDED", "the grid", 900)
        wait_until(lambda: get_grid(db, alice, grid.id).finished_at, "the grid to close")
    parent = get_grid(db, alice, grid.id).mlflow_parent_run_id
    assert parent
    client = MlflowClient(tracking)
    assert client.get_run(parent).info.status == "FINISHED"
    rows = grid_summary(db, alice, grid.id)
    assert len(rows) == 4 and len({r.mlflow_run_id for r in rows}) == 4
    for row in rows:
        assert row.status == "SUCCEEDED" and row.step == row.total_steps == 16
        assert 0 < row.metrics["loss"] < 20
        run = client.get_run(row.mlflow_run_id or "")
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags[TAG_JOB] == row.job_id
        for key, value in row.axis_values.items():
            assert float(run.data.params[key]) == float(value)
        exp = client.get_experiment(run.info.experiment_id)
        assert exp is not None and exp.name == "dino/real4"
        attempts = len(attempts_of(db, row.job_id))
        assert attempts == (2 if row.job_id == victim else 1)
    first, second = attempts_of(db, victim)
    assert (first.status, second.status) == ("LOST", "SUCCEEDED")
    assert first.mlflow_run_id == second.mlflow_run_id == job_row(db, victim).mlflow_run_id
    ckpt = events_of(db, victim, "checkpoint")
    before = [e.data["step"] for e in ckpt if e.attempt == 1]
    after = [e.data["step"] for e in ckpt if e.attempt == 2]
    assert before and after and min(after) > max(before)  # resumed, not restarted
    exp_id = client.get_run(parent).info.experiment_id
    runs = client.search_runs([exp_id], filter_string=f"tags.`{TAG_JOB}` = '{victim}'")
    assert [r.info.run_id for r in runs] == [first.mlflow_run_id]  # one run for both attempts
    history = client.get_metric_history(first.mlflow_run_id or "", "loss")
    assert sorted(m.step for m in history) == list(range(1, 17))  # every step exactly once


def test_eval_jobs_score_the_final_checkpoint(db: Database, alice: UserView, tracking: str) -> None:
    """... and the grid's baselines job scores the k-NN baselines the k-NN job skips."""
    req = GridRequest(
        name="evals",
        base_config=tiny(),
        axes={"train.seed": [0]},
        eval_options={"eval_attention": {"num_images": 2, "baselines": False}},
    )
    grid = submit_grid(db, alice, req)
    with running_scheduler(
        db, job_fn="worker.run:run_job", mlflow_setup=True, mlflow_tracking_uri=tracking
    ):
        wait_until(lambda: get_grid(db, alice, grid.id).status == "SUCCEEDED", "the grid", 600)
    (row,) = grid_summary(db, alice, grid.id)
    knn, att = row.evals["eval_knn"], row.evals["eval_attention"]
    assert 0 <= knn.metrics["knn_top1_k20"] <= 100
    assert 0 <= att.metrics["attn_iou_mean_map"] <= 1
    assert not any("random_init" in k or "raw_pixels" in k for k in knn.metrics)
    assert row.baseline is not None and row.baseline.status == "SUCCEEDED"
    rand = row.baseline.metrics["knn_top1_k20_random_init_seed0"]
    raw = row.baseline.metrics["knn_top1_k20_raw_pixels"]
    assert 0 <= rand <= 100 and 0 <= raw <= 100
    (flat,) = grid_results(grid.name, [row]).run_table
    assert (flat["knn_random_init"], flat["knn_raw_pixels"]) == (rand, raw)
    base_run = MlflowClient(tracking).get_run(job_row(db, row.baseline.job_id).mlflow_run_id or "")
    assert (
        base_run.data.tags["mlflow.parentRunId"]
        == get_grid(db, alice, grid.id).mlflow_parent_run_id
    )
    final = job_row(db, row.job_id).checkpoint_uri
    assert final and Path(final).name.startswith("checkpoint-")
    for cell in (knn, att):
        assert job_row(db, cell.job_id).source_checkpoint == final
    # the production job function runs again in a kept process (issue #18): no new imports
    assert any(events_of(db, cell.job_id, "warm_start") for cell in (knn, att))
