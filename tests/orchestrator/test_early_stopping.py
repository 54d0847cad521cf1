"""Early stopping of a grid (successive halving at rung epochs) on a real 2-CPU Ray node.

The job function (tests.orchestrator.jobfns, ``t.knn_by``) reports an epoch k-NN that falls
with the teacher temperature and the learning rate, so teacher temperature 0.1 is designed to
lose. The orchestrator runs as a real process that is SIGKILLed after the first rung's
decision; a scheduler in the test finishes the grid.
"""

from __future__ import annotations

import signal
import statistics
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from orchestrator.db import Database
from orchestrator.errors import GridValidationError
from orchestrator.models import Grid, Job, RungDecision
from orchestrator.schemas import GridRequest, UserView
from orchestrator.service import get_grid, grid_summary, submit_grid
from tests.orchestrator.harness import running_scheduler, wait_until
from tests.orchestrator.jobfns import epoch_knn, read_log
from tests.orchestrator.raynodes import RayNode
from tests.orchestrator.test_orchestrator_process import orchestrator_process

BASE: dict[str, Any] = {
    "model": {"arch": "vit_custom", "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2},
    "crops": {"global_size": 16, "local_size": 8},
    "train": {"epochs": 4},
    "optim": {"warmup_epochs": 0},
    "loss": {"warmup_teacher_temp_epochs": 0},
    "eval": {"knn_every_epochs": 1},
}
AXES = {"loss.teacher_temp": [0.04, 0.1], "optim.lr": [0.0005, 0.001]}
KNN_BY = "loss.teacher_temp,optim.lr"
ES = {"rungs": [1, 2], "reduction_factor": 2}


def _request(**changes: Any) -> GridRequest:
    data: dict[str, Any] = {
        "name": "asha",
        "base_config": BASE,
        "axes": AXES,
        "seeds": [0, 1],
        "evals": ["eval_knn"],
        "early_stopping": ES,
        "tags": {"t.steps": "4", "t.step_s": "0.05", "t.knn_by": KNN_BY},
    }
    return GridRequest.model_validate({**data, **changes})


def _grids(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Grid)) or 0)


@pytest.mark.parametrize(
    ("early_stopping", "base", "field", "words"),
    [
        ({"rungs": [1, 4]}, {}, "early_stopping.rungs.1", "not before the last epoch 4"),
        ({"rungs": [3]}, {"eval": {"knn_every_epochs": 2}}, "early_stopping.rungs.0", "every 2"),
        ({}, {"eval": {"knn_every_epochs": 0}}, "early_stopping.metric", "metric: loss"),
        ({"rungs": [2, 1]}, {}, "early_stopping.rungs.1", "ascending"),
        ({"min_epochs": 4}, {}, "early_stopping.min_epochs", "lower min_epochs"),
    ],
)
def test_rungs_that_are_not_measured_epochs_are_refused_and_nothing_is_stored(
    db: Database,
    alice: UserView,
    early_stopping: dict[str, Any],
    base: dict[str, Any],
    field: str,
    words: str,
) -> None:
    config = {**BASE, **base}
    with pytest.raises(GridValidationError) as err:
        submit_grid(db, alice, _request(base_config=config, early_stopping=early_stopping))
    (error,) = [e for e in err.value.errors if e.field == field]
    assert words in error.message
    assert _grids(db) == 0


def test_unknown_early_stopping_fields_are_refused_by_name() -> None:
    with pytest.raises(ValidationError) as err:
        _request(early_stopping={"rungs": [1], "patience": 3})
    assert err.value.errors()[0]["loc"] == ("early_stopping", "patience")


def _decisions(db: Database, grid_id: str) -> list[RungDecision]:
    with db.session() as s:
        stmt = select(RungDecision).where(RungDecision.grid_id == grid_id)
        return list(s.scalars(stmt.order_by(RungDecision.rung, RungDecision.rank)))


def _pretrain(db: Database, grid_id: str) -> list[Job]:
    with db.session() as s:
        stmt = select(Job).where(Job.grid_id == grid_id, Job.kind == "pretrain")
        return list(s.scalars(stmt.order_by(Job.combination, Job.name)))


@pytest.mark.slow  # two orchestrators and 17 Ray actors: ~45 s on 2 idle cores
@pytest.mark.usefixtures("ray_conn")
def test_successive_halving_stops_the_losers_at_the_first_rung_and_survives_sigkill(
    db: Database, db_url: str, alice: UserView, ray_conn: RayNode, tmp_path: Path
) -> None:
    grid = submit_grid(db, alice, _request())
    pretrain = [j for j in grid.jobs if j.kind == "pretrain"]
    temp_of = {j.combination: j.axis_values["loss.teacher_temp"] for j in pretrain}
    assert {j.until_epoch for j in pretrain} == {1}

    with orchestrator_process(db_url, ray_conn, tmp_path / "orchestrator.log") as first:
        wait_until(lambda: len(_decisions(db, grid.id)) == 4, "the first rung's decision", 120)
        first.send_signal(signal.SIGKILL)  # between the rungs
        first.wait(30)
    first_rung = _decisions(db, grid.id)
    with running_scheduler(db):
        wait_until(lambda: get_grid(db, alice, grid.id).finished_at, "the grid to end", 180)
    decisions = _decisions(db, grid.id)
    # the first rung was decided once, by the killed process, and kept
    assert [(d.id, d.promoted) for d in decisions if d.rung == 1] == [
        (d.id, d.promoted) for d in first_rung
    ]
    assert [(d.rung, d.rank, d.promoted) for d in decisions] == [
        (1, 1, True), (1, 2, True), (1, 3, False), (1, 4, False), (2, 1, True), (2, 2, False),
    ]  # fmt: skip
    for d in decisions:  # decided on the mean over the two seeds
        runs = [j for j in _pretrain(db, grid.id) if j.combination == d.combination]
        direct = statistics.fmean(epoch_knn(j.config, KNN_BY, d.rung) for j in runs)
        assert d.value == pytest.approx(direct) and d.n_seeds == 2 and d.metric == "knn_top1_k20"
        assert (d.rung == 1 and not d.promoted) == (temp_of[d.combination] == 0.1)
    (winner,) = [d.combination for d in decisions if d.rung == 2 and d.promoted]
    for job in _pretrain(db, grid.id):
        starts = [e["step"] for e in read_log(job.storage_uri) if e["event"] == "start"]
        if job.combination == winner:
            assert job.status == "SUCCEEDED" and starts == [0, 1, 2]  # resumed, never restarted
            continue
        stopped_at = 1 if temp_of[job.combination] == 0.1 else 2
        assert job.status == "STOPPED_EARLY"
        assert f"rung epoch {stopped_at}: knn_top1_k20 seed mean" in job.status_reason
        assert starts == list(range(stopped_at))
        assert job.checkpoint_uri and Path(job.checkpoint_uri).exists() and job.mlflow_run_id
    with db.session() as s:
        evals = s.scalars(select(Job).where(Job.grid_id == grid.id, Job.kind == "eval_knn"))
        ran = {j.combination for j in evals if j.status == "SUCCEEDED"}
        assert ran == {winner}  # a stopped run's evaluations are cancelled, not paid for
    rows = grid_summary(db, alice, grid.id)
    stopped = {(r.combination, r.stopped_at_epoch, r.stop_metric) for r in rows if r.stop_metric}
    assert {c for c, _, _ in stopped} == set(temp_of) - {winner}
    assert all(m == "knn_top1_k20" for _, _, m in stopped)
