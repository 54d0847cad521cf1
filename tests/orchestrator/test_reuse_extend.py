"""No run paid for twice: a resubmitted grid reuses every SUCCEEDED run, and an extended grid
runs only its new combinations and seeds (real 2-CPU Ray, tests.orchestrator.jobfns)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from orchestrator.ablation import grid_results
from orchestrator.db import Database
from orchestrator.errors import ConflictError, GridValidationError
from orchestrator.models import Attempt, Event, Job
from orchestrator.schemas import GridExtension, GridRequest, UserView
from orchestrator.service import cancel_grid, extend_grid, get_grid, grid_summary, submit_grid
from tests.orchestrator.harness import running_scheduler, wait_until

BASE: dict[str, Any] = {
    "model": {"arch": "vit_custom", "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2},
    "crops": {"global_size": 16, "local_size": 8},
}


def _request(**changes: Any) -> GridRequest:
    data: dict[str, Any] = {
        "name": "reuse",
        "base_config": BASE,
        "axes": {"loss.teacher_temp": [0.04, 0.07]},
        "seeds": [0],
        "evals": ["eval_knn"],
        "tags": {"t.scores": "1", "t.steps": "1", "t.step_s": "0"},
    }
    return GridRequest.model_validate({**data, **changes})


def _jobs(db: Database, grid_id: str) -> list[Job]:
    with db.session() as s:
        return list(s.scalars(select(Job).where(Job.grid_id == grid_id)))


def _attempts(db: Database, job_ids: list[str]) -> dict[str, int]:
    with db.session() as s:
        rows = s.execute(
            select(Attempt.job_id, func.count())
            .where(Attempt.job_id.in_(job_ids))
            .group_by(Attempt.job_id)
        )
        return {str(j): int(n) for j, n in rows}


def _finished(db: Database, user: UserView, grid_id: str) -> bool:
    return get_grid(db, user, grid_id).finished_at is not None


# aggregation and identity are computed in Python over rows both backends store alike (the
# database-level behaviour is tests/orchestrator/test_db.py's, on both): SQLite only, ~20 s saved
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.slow  # two grids of 5 and 2 tiny jobs on Ray: ~40 s on 2 idle cores
@pytest.mark.usefixtures("ray_conn")
def test_resubmitted_grid_runs_nothing_and_an_extension_runs_only_what_is_new(
    db: Database, alice: UserView
) -> None:
    first = submit_grid(db, alice, _request())
    with running_scheduler(db):
        wait_until(lambda: _finished(db, alice, first.id), "the first grid to end", 300)
    table = grid_results(first.name, grid_summary(db, alice, first.id)).table

    again = submit_grid(db, alice, _request())
    jobs = _jobs(db, again.id)
    assert len(jobs) == 1 + 2 * 2 and all(j.status == "SUCCEEDED" for j in jobs)
    assert _attempts(db, [j.id for j in jobs]) == {}  # nothing ran, nothing will
    originals = {j.id for j in _jobs(db, first.id)}
    assert {j.reused_from for j in jobs} == originals  # each one links the run that ran
    with db.session() as s:
        reused = s.scalars(select(Event).where(Event.grid_id == again.id, Event.kind == "reused"))
        assert {e.data["source_job"] for e in reused} == originals
    rows = grid_summary(db, alice, again.id)
    assert grid_results(again.name, rows).table == table  # the same summary
    assert all(r.reused_from in originals for r in rows)
    fresh = submit_grid(db, alice, _request(reuse=False))
    assert all(j.status == "QUEUED" and j.reused_from is None for j in _jobs(db, fresh.id))

    before = {j.id for j in _jobs(db, first.id)}
    extend_grid(db, alice, first.id, GridExtension(axes={"loss.teacher_temp": [0.1]}))
    new = [j for j in _jobs(db, first.id) if j.id not in before]
    assert sorted((j.kind, j.combination) for j in new) == [("eval_knn", 2), ("pretrain", 2)]
    cancel_grid(db, alice, fresh.id)  # it would run: out of the way
    with running_scheduler(db):
        wait_until(lambda: _finished(db, alice, first.id), "the extended grid to end", 300)
    counts = _attempts(db, [j.id for j in _jobs(db, first.id)])
    assert all(counts.get(j, 0) == 1 for j in before)  # the old runs did not run again
    assert all(counts.get(j.id, 0) == 1 for j in new)
    results = grid_results(first.name, grid_summary(db, alice, first.id))
    assert [r["loss.teacher_temp"] for r in results.table] == [0.04, 0.07, 0.1]
    assert all(r["status"] == "SUCCEEDED" and r["knn_top1"] for r in results.table)


def test_more_seeds_queue_only_their_runs_and_their_baselines(
    db: Database, alice: UserView
) -> None:
    grid = submit_grid(db, alice, _request(seeds=[0, 1]))
    before = {j.id for j in _jobs(db, grid.id)}
    ext = GridExtension(axes={"loss.teacher_temp": [0.1]}, seeds=[2])
    view = extend_grid(db, alice, grid.id, ext)
    assert view.seeds == [0, 1, 2] and view.n_combinations == 3
    new = [j for j in _jobs(db, grid.id) if j.id not in before]
    runs = [j for j in new if j.kind == "pretrain"]
    # teacher temperature 0.1 at seeds 0, 1, 2 and seed 2 of the two existing temperatures
    got = sorted((j.axis_values["loss.teacher_temp"], j.config["train"]["seed"]) for j in runs)
    assert got == [(0.04, 2), (0.07, 2), (0.1, 0), (0.1, 1), (0.1, 2)]
    assert {j.combination for j in runs if j.axis_values["loss.teacher_temp"] == 0.1} == {2}
    assert len([j for j in new if j.kind == "eval_knn"]) == 5
    (baselines,) = [j for j in new if j.kind == "baselines"]
    assert baselines.eval_options["seeds"] == [2]  # only the new seed is scored


def test_extensions_that_change_the_grid_are_refused_and_store_nothing(
    db: Database, alice: UserView
) -> None:
    grid = submit_grid(db, alice, _request(seeds=[0, 1]))
    n_jobs = len(_jobs(db, grid.id))
    conflicts = [
        (GridExtension(base_config={**BASE, "train": {"epochs": 3}}), "base_config differs"),
        (GridExtension(axes={"optim.lr": [0.001]}), "optim.lr is not an axis"),
        (GridExtension(axes={"loss.teacher_temp": [0.07, 0.1]}), "0.07 is already a value"),
        (GridExtension(seeds=[1, 5]), "1 is already a seed"),
    ]
    for ext, words in conflicts:
        with pytest.raises(ConflictError, match=words):
            extend_grid(db, alice, grid.id, ext)
    with pytest.raises(GridValidationError) as err:
        extend_grid(db, alice, grid.id, GridExtension(axes={"loss.teacher_temp": [-1.0]}))
    assert err.value.errors[0].field == "axes.loss.teacher_temp.2"
    with pytest.raises(GridValidationError):
        extend_grid(db, alice, grid.id, GridExtension())
    assert len(_jobs(db, grid.id)) == n_jobs
    assert get_grid(db, alice, grid.id).axes == {"loss.teacher_temp": [0.04, 0.07]}
