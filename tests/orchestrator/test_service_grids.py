"""Grids through the service layer: storage, validation before storage, summary, cancel."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.db import Database
from orchestrator.errors import GridValidationError, NotFoundError
from orchestrator.models import Grid, Job
from orchestrator.schemas import GridRequest, UserView
from orchestrator.service import (
    cancel_grid,
    get_grid,
    grid_summary,
    list_grids,
    list_jobs,
    submit_grid,
)
from orchestrator.states import transition
from tests.tiny import tiny_vit
from worker.contracts import RUNNING, SUCCEEDED

BASE = {
    "model": tiny_vit(),
    "crops": {"global_size": 16, "local_size": 8},
}
AXES = {
    "loss.teacher_temp": [0.04, 0.07],
    "teacher.momentum": [0.99, 0.996],
    "crops.local_number": [0, 6],
}


def test_grid_stores_a_pretrain_job_and_default_evals_per_combination(
    db: Database, alice: UserView
) -> None:
    grid = submit_grid(db, alice, GridRequest(name="abl", base_config=BASE, axes=AXES))
    assert grid.n_combinations == 8 and grid.status == "QUEUED"
    assert grid.mlflow_experiment == "dino/abl" and grid.mlflow_parent_run_id is None
    assert len(grid.jobs) == 25 and grid.counts == {"QUEUED": 25}  # + the k-NN baselines job
    assert grid.jobs[0].kind == "baselines"
    pretrain = [j for j in grid.jobs if j.kind == "pretrain"]
    assert [j.combination for j in pretrain] == list(range(8))
    assert pretrain[5].axis_values == {
        "loss.teacher_temp": 0.07,
        "teacher.momentum": 0.99,
        "crops.local_number": 6,
    }
    assert pretrain[5].config["crops"]["local_number"] == 6
    for p in pretrain:
        kinds = sorted(j.kind for j in grid.jobs if j.depends_on == p.id)
        assert kinds == ["eval_attention", "eval_knn"]
        assert all(j.mlflow_experiment == "dino/abl" for j in grid.jobs if j.depends_on == p.id)


def test_linear_probe_on_request_with_per_kind_options(db: Database, alice: UserView) -> None:
    req = GridRequest(
        name="lin",
        base_config=BASE,
        axes={"train.seed": [1, 2]},
        evals=["eval_linear"],
        eval_options={"eval_linear": {"epochs": 3}},
    )
    grid = submit_grid(db, alice, req)
    linear = [j for j in grid.jobs if j.kind == "eval_linear"]
    assert len(linear) == 2 and len(grid.jobs) == 4
    with db.session() as s:
        assert s.get(Job, linear[0].id).eval_options == {"epochs": 3}  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="not in evals"):
        GridRequest(name="x", evals=["eval_knn"], eval_options={"eval_linear": {}})


def test_invalid_combination_or_size_stores_nothing(db: Database, alice: UserView) -> None:
    bad = GridRequest(name="bad", base_config=BASE, axes={"crops.global_size": [16, 18]})
    with pytest.raises(GridValidationError, match=r"combination 1 .*crops\.global_size"):
        submit_grid(db, alice, bad)
    big = GridRequest(name="big", base_config=BASE, axes={"train.seed": list(range(10))})
    with pytest.raises(GridValidationError, match="cap of 8"):
        submit_grid(db, alice, big, max_combinations=8)
    with db.session() as s:
        assert s.query(Grid).count() == 0 and s.query(Job).count() == 0


def test_summary_rows_hold_axis_values_status_metrics_and_evals(
    db: Database, alice: UserView
) -> None:
    grid = submit_grid(
        db,
        alice,
        GridRequest(name="sum", base_config=BASE, axes={"loss.teacher_temp": [0.04, 0.07]}),
    )
    first = next(j for j in grid.jobs if j.kind == "pretrain" and j.combination == 0)
    with db.session() as s:
        row = s.get(Job, first.id)
        assert row is not None
        transition(s, row, RUNNING, "claim", values={"metrics": {"loss": 9.0}, "step": 3})
        transition(
            s,
            row,
            SUCCEEDED,
            "done",
            values={
                "result_metrics": {"loss": 4.5},
                "mlflow_run_id": "r0",
                "collapsed": True,
                "collapse_kind": "uniform",
            },
        )
        knn = s.query(Job).filter(Job.depends_on == first.id, Job.kind == "eval_knn").one()
        transition(s, knn, RUNNING, "claim")
        transition(s, knn, SUCCEEDED, "done", values={"result_metrics": {"knn_top1_k20": 71.5}})
    rows = grid_summary(db, alice, grid.id)
    assert [r.combination for r in rows] == [0, 1]
    r0, r1 = rows
    assert r0.axis_values == {"loss.teacher_temp": 0.04} and r0.status == SUCCEEDED
    assert r0.metrics == {"loss": 4.5} and r0.mlflow_run_id == "r0" and r0.step == 3
    assert r0.collapsed and r0.collapse_kind == "uniform"
    assert r0.evals["eval_knn"].status == SUCCEEDED
    assert r0.evals["eval_knn"].metrics == {"knn_top1_k20": 71.5}
    assert r0.evals["eval_attention"].status == "QUEUED"
    assert r1.status == "QUEUED" and r1.metrics == {} and not r1.collapsed
    assert get_grid(db, alice, grid.id).status == "RUNNING"


def test_cancel_grid_and_owner_scoping(
    db: Database, alice: UserView, bob: UserView, admin: UserView
) -> None:
    grid = submit_grid(
        db, alice, GridRequest(name="c", base_config=BASE, axes={"train.seed": [1, 2]})
    )
    with pytest.raises(NotFoundError):
        get_grid(db, bob, grid.id)
    with pytest.raises(NotFoundError):
        grid_summary(db, bob, grid.id)
    assert [g.id for g in list_grids(db, admin)] == [grid.id]
    assert list_grids(db, bob) == []
    out = cancel_grid(db, alice, grid.id)
    assert out.counts == {"CANCELLED": 7} and out.status == "FINISHED"
    pre = [j for j in list_jobs(db, alice) if j.kind == "pretrain"]
    assert all(j.status_reason == f"grid {grid.id} cancelled by alice" for j in pre)
    listed = list_grids(db, alice)[0]
    assert listed.counts == {"CANCELLED": 7} and listed.jobs == []


def test_grid_idempotency(db: Database, alice: UserView) -> None:
    req = GridRequest(name="i", base_config=BASE, axes={"train.seed": [1]})
    g1 = submit_grid(db, alice, req, idempotency_key="g")
    g2 = submit_grid(db, alice, req, idempotency_key="g")
    assert g1.id == g2.id and len(list_grids(db, alice)) == 1


def test_summary_rows_carry_the_configured_k_and_eval_options(
    db: Database, alice: UserView
) -> None:
    base = {**BASE, "eval": {"knn_k": 10}}
    req = GridRequest(
        name="k", base_config=base, axes={"train.seed": [1]}, evals=["eval_knn"],
        eval_options={"eval_knn": {"ks": [10, 20]}},
    )  # fmt: skip
    (row,) = grid_summary(db, alice, submit_grid(db, alice, req).id)
    assert row.knn_k == 10 and row.evals["eval_knn"].options == {"ks": [10, 20], "baselines": False}
    assert row.baseline is not None and row.baseline.options == {"ks": [10, 20], "seeds": [1]}


def test_seeds_repeat_every_combination_and_the_knn_baselines_run_once(
    db: Database, alice: UserView
) -> None:
    req = GridRequest(
        name="s",
        base_config=BASE,
        axes={"loss.teacher_temp": [0.04, 0.07]},
        seeds=[3, 1, 2],
        evals=["eval_knn", "eval_attention"],
        eval_options={"eval_knn": {"ks": [10]}},
    )
    grid = submit_grid(db, alice, req)
    assert grid.seeds == [3, 1, 2] and grid.n_combinations == 2
    assert len(grid.jobs) == 2 * 3 * 3 + 1
    (base,) = [j for j in grid.jobs if j.kind == "baselines"]
    assert (base.combination, base.depends_on, base.axis_values) == (None, None, {})
    assert base.name == "s/baselines"
    with db.session() as s:
        stored = s.get(Job, base.id)
        assert stored is not None and stored.eval_options == {"ks": [10], "seeds": [3, 1, 2]}
        knn = s.query(Job).filter(Job.grid_id == grid.id, Job.kind == "eval_knn").all()
        assert len(knn) == 6 and all(
            j.eval_options == {"ks": [10], "baselines": False} for j in knn
        )
        att = s.query(Job).filter(Job.grid_id == grid.id, Job.kind == "eval_attention").all()
        assert all(j.eval_options == {} for j in att)  # only the k-NN baselines moved
    pretrain = [j for j in grid.jobs if j.kind == "pretrain"]
    assert [(j.combination, j.config["train"]["seed"]) for j in pretrain] == [
        (c, s) for c in (0, 1) for s in (1, 2, 3)
    ]
    assert pretrain[0].name == "s/0/seed1" and pretrain[0].axis_values == {
        "loss.teacher_temp": 0.04
    }
    rows = grid_summary(db, alice, grid.id)
    assert [(r.combination, r.seed) for r in rows] == [(c, s) for c in (0, 1) for s in (1, 2, 3)]
    assert {r.baseline.job_id for r in rows if r.baseline} == {base.id}


def test_each_architecture_gets_its_own_baselines_job(db: Database, alice: UserView) -> None:
    axes = {"model.embed_dim": [32, 64], "loss.teacher_temp": [0.04, 0.07]}
    grid = submit_grid(db, alice, GridRequest(name="a", base_config=BASE, axes=axes, seeds=[0]))
    bases = [j for j in grid.jobs if j.kind == "baselines"]
    assert sorted(b.axis_values["model.embed_dim"] for b in bases) == [32, 64]
    assert sorted(b.name for b in bases) == ["a/baselines/0", "a/baselines/1"]
    for row in grid_summary(db, alice, grid.id):
        (match,) = [b for b in bases if row.baseline and b.id == row.baseline.job_id]
        assert match.config["model"]["embed_dim"] == row.axis_values["model.embed_dim"]


def test_no_baselines_job_without_knn_or_with_its_baselines_off(
    db: Database, alice: UserView
) -> None:
    off = GridRequest(
        name="off", base_config=BASE, evals=["eval_knn"],
        eval_options={"eval_knn": {"baselines": False}},
    )  # fmt: skip
    grid = submit_grid(db, alice, off)
    assert [j.kind for j in grid.jobs] == ["pretrain", "eval_knn"]
    grid = submit_grid(
        db, alice, GridRequest(name="att", base_config=BASE, evals=["eval_attention"])
    )
    assert [j.kind for j in grid.jobs] == ["pretrain", "eval_attention"]


def test_the_cap_counts_runs_and_bad_seeds_store_nothing(db: Database, alice: UserView) -> None:
    big = GridRequest(
        name="big", base_config=BASE, axes={"optim.lr": [0.1, 0.2, 0.3]}, seeds=[0, 1, 2]
    )
    with pytest.raises(GridValidationError, match=r"9 pretraining runs \(3 optim.lr x 3 seeds\)"):
        submit_grid(db, alice, big, max_combinations=8)
    cases = {
        "seeds": GridRequest(name="e", base_config=BASE, seeds=[]),
        "seeds.2": GridRequest(name="d", base_config=BASE, seeds=[4, 5, 4]),
        "seeds ": GridRequest(name="x", base_config=BASE, axes={"train.seed": [1]}, seeds=[0]),
        "seeds  ": GridRequest(
            name="o", base_config=BASE, overrides=[{"train.seed": 1}], seeds=[0, 1]
        ),
    }
    for field, req in cases.items():
        with pytest.raises(GridValidationError) as err:
            submit_grid(db, alice, req)
        assert [e.field for e in err.value.errors] == [field.strip()], err.value.errors
    with pytest.raises(ValidationError, match="seeds"):
        GridRequest.model_validate({"name": "t", "seeds": [0, "1"]})
    with pytest.raises(ValidationError, match="seed"):
        GridRequest.model_validate({"name": "t", "seed": [0]})
    with db.session() as s:
        assert s.query(Grid).count() == 0 and s.query(Job).count() == 0
