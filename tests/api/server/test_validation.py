"""Invalid requests through a real server: 422 problem+json naming each field path, dataset
paths confined to the configured roots (symlinks and ``..`` resolved), size limits."""

from __future__ import annotations

import os
from pathlib import Path

from tests.api.conftest import Server
from tests.api.helpers import AXES, fields, grid_body, tiny


def test_config_errors_name_each_field(server: Server) -> None:
    cfg = tiny(loss={"teacher_temp": -1.0, "teacher_tmp": 0.04}, crops={"global_size": 18})
    with server.client("alice") as c:
        r = c.post("/v1/jobs", json={"config": cfg})
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        p = r.json()
        assert p["status"] == 422 and p["title"] == "Request validation failed"
        assert p["type"].startswith("urn:dino:problem:")
        assert set(fields(p)) == {"body.config.loss.teacher_temp", "body.config.loss.teacher_tmp"}
        assert "body.config.loss.teacher_temp" in p["detail"]
        # a cross-field check (patch size divides the crop) names its field too
        r = c.post("/v1/jobs", json={"config": tiny(crops={"global_size": 18})})
        assert fields(r.json()) == ["body.config.crops.global_size"]
        assert "multiple of 4" in r.json()["errors"][0]["message"]
        # dotted overrides are reported where they were given
        r = c.post("/v1/jobs", json={"config": tiny(), "overrides": {"optim.lr": -1}})
        assert fields(r.json()) == ["body.overrides.optim.lr"]
        r = c.post("/v1/jobs", json={"config": tiny(), "overrides": ["optim.lrr=1"]})
        assert fields(r.json()) == ["body.overrides.optim.lrr"]


def test_fastapis_own_validation_is_problem_json(server: Server) -> None:
    with server.client("alice") as c:
        r = c.post("/v1/jobs", json={"config": tiny(), "surprise": 1, "priority": "high"})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert set(fields(r.json())) == {"body.surprise", "body.priority"}
        r = c.get("/v1/jobs", params={"limit": 0, "status": "DONE"})
        assert set(fields(r.json())) == {"query.limit", "query.status"}
        r = c.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422 and fields(r.json())[0].startswith("body")
        r = c.post("/v1/jobs", content=b'{"config": {"loss": {"teacher_temp": NaN}}}',
                   headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 422 and fields(r.json()) == ["body.config.loss.teacher_temp"]
        r = c.delete("/v1/jobs")
        assert r.status_code == 405 and r.json()["status"] == 405
        assert c.get("/v2/nothing").json()["status"] == 404


def test_grid_errors_name_the_axis_and_value(server: Server) -> None:
    with server.client("alice") as c:
        body = grid_body(axes={"loss.teacher_tmp": [0.04], "crops.global_size": [16, 18]})
        r = c.post("/v1/grids", json=body)
        assert r.status_code == 422 and fields(r.json()) == ["body.axes.loss.teacher_tmp"]
        body = grid_body(axes={"crops.global_size": [16, 18], "optim.lr": [0.001, -1]})
        assert set(fields(c.post("/v1/grids", json=body).json())) == {
            "body.axes.crops.global_size.1",
            "body.axes.optim.lr.1",
        }
        body = grid_body(base_config=tiny(train={"epochs": 0}))
        assert fields(c.post("/v1/grids", json=body).json()) == ["body.base_config.train.epochs"]
        body = grid_body(overrides=[{"optim.lr": 0.001}, ["optim.lr=abc"]])
        assert fields(c.post("/v1/grids", json=body).json()) == ["body.overrides.1.optim.lr"]
        r = c.post("/v1/grids", json=grid_body(axes={"loss.teacher_temp": [0.04, 0.04]}))
        assert r.status_code == 422 and "same config" in r.json()["detail"]
        values = [0.01 * (i + 1) for i in range(5)]
        big = {"loss.teacher_temp": values, "loss.student_temp": values}
        r = c.post("/v1/grids", json=grid_body(axes=big))
        assert r.status_code == 422 and fields(r.json()) == ["body.axes"]
        assert "25 combinations" in r.json()["detail"] and "cap of 16" in r.json()["detail"]
        r = c.post("/v1/grids", json=grid_body(axes={"optim.lr": [0.001] * 33}))
        assert r.status_code == 422 and fields(r.json()) == ["body.axes.optim.lr"]
        r = c.post("/v1/grids", json=grid_body(name="x" * 201))
        assert fields(r.json()) == ["body.name"]
        r = c.post("/v1/grids", json=grid_body(evals=["eval_knn", "eval_knn"]))
        assert fields(r.json()) == ["body.evals"] and "twice" in r.json()["detail"]


def test_data_root_is_confined_to_the_dataset_roots(server: Server, tmp_path: Path) -> None:
    root = Path(server.settings.dataset_roots[0])
    inside = root / "shapes"
    inside.mkdir(exist_ok=True)
    escape = root / "escape"
    if not escape.exists():
        os.symlink(tmp_path, escape)  # a link inside the root pointing out of it
    bad = [
        str(tmp_path),
        str(root / ".." / "elsewhere"),
        str(escape / "data"),
        "relative/dir",
        "s3://bucket/data",
        "/etc/passwd",
    ]
    with server.client("alice") as c:
        ok = c.post("/v1/jobs", json={"config": tiny(data={"root": str(inside)})})
        assert ok.status_code == 201, ok.text
        assert ok.json()["config"]["data"]["root"] == str(inside)
        for path in bad:
            r = c.post("/v1/jobs", json={"config": tiny(data={"root": path})})
            assert r.status_code == 422, path
            assert fields(r.json()) == ["body.config.data.root"], path
        r = c.post("/v1/jobs", json={"config": tiny(), "overrides": {"data.root": "/etc"}})
        assert fields(r.json()) == ["body.overrides.data.root"]
        r = c.post("/v1/grids", json=grid_body(axes={**AXES, "data.root": [str(inside), "/etc"]}))
        assert fields(r.json()) == ["body.axes.data.root"]
        body = grid_body(base_config=tiny(data={"root": "/usr/share"}))
        assert fields(c.post("/v1/grids", json=body).json()) == ["body.base_config.data.root"]
        body = grid_body(eval_options={"eval_knn": {"data": {"root": "/etc"}}})
        r = c.post("/v1/grids", json=body)
        assert fields(r.json()) == ["body.eval_options.eval_knn.data.root"]
        ev = {"kind": "eval_knn", "config": tiny(), "source_checkpoint": "/etc/shadow"}
        assert fields(c.post("/v1/jobs", json=ev).json()) == ["body.source_checkpoint"]


def test_large_bodies_get_413(server: Server) -> None:
    limit = server.settings.max_body_bytes
    huge = {"config": tiny(), "tags": {"pad": "x" * 400}, "name": "n", "eval_options": {}}
    huge["config"]["data"]["split"] = "y" * (limit + 10)
    with server.client("alice") as c:
        r = c.post("/v1/jobs", json=huge)
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 413 and str(limit) in r.json()["detail"]

        def chunks():  # no Content-Length: refused while streaming
            for _ in range(limit // 65536 + 2):
                yield b" " * 65536

        r = c.post("/v1/grids", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_every_grid_error_is_reported_in_one_answer(server: Server) -> None:
    body = grid_body(
        base_config=tiny(train={"epochs": 0}),
        axes={"loss.teacher_tmp": [0.04], "optim.lr": [0.001, 0.002]},
        overrides=[["optim.lr=abc"], ["train.seed"]],
        eval_options={"eval_knn": {"k": 5}},
    )
    with server.client("alice") as c:
        r = c.post("/v1/grids", json=body)
    assert r.status_code == 422
    assert set(fields(r.json())) == {
        "body.base_config.train.epochs",
        "body.axes.loss.teacher_tmp",
        "body.overrides.0.optim.lr",
        "body.overrides.1.0",
        "body.eval_options.eval_knn.k",
    }


def test_a_grid_is_validated_once_per_request(server: Server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dino_core.config import DinoConfig

    calls: list[int] = []
    original = DinoConfig.model_validate.__func__  # type: ignore[attr-defined]

    def counting(cls, obj, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(cls, obj, *args, **kwargs)

    monkeypatch.setattr(DinoConfig, "model_validate", classmethod(counting))
    with server.client("alice") as c:
        r = c.post("/v1/grids", json=grid_body("once"))
    assert r.status_code == 201, r.text
    assert len(calls) == 1 + 4  # the base config, then each of the 4 combinations once


def test_dry_run_returns_the_combinations_and_stores_nothing(server: Server) -> None:
    with server.client("alice") as c:
        before = c.get("/v1/grids", params={"limit": 1000}).json()["items"]
        r = c.post("/v1/grids", params={"dry_run": "true"}, json=grid_body("dry"))
        assert r.status_code == 200, r.text
        plan = r.json()
        assert plan["n_combinations"] == 4 and plan["n_jobs"] == 9  # + the baselines job
        assert (plan["n_runs"], plan["n_baseline_jobs"], plan["seeds"]) == (4, 1, [])
        assert [p["values"] for p in plan["combinations"]][1] == {
            "loss.teacher_temp": 0.04,
            "crops.local_number": 2,
        }
        assert plan["combinations"][3]["config"]["loss"]["teacher_temp"] == 0.07
        assert c.get("/v1/grids", params={"limit": 1000}).json()["items"] == before
        bad = c.post("/v1/grids", params={"dry_run": "true"}, json=grid_body(axes={"x.y": [1]}))
        assert bad.status_code == 422 and fields(bad.json()) == ["body.axes.x.y"]


def test_eval_options_are_checked_at_submit_per_kind(server: Server) -> None:
    with server.client("alice") as c:
        body = grid_body(eval_options={"eval_knn": {"train_limit": 5, "ks": [0]}})
        r = c.post("/v1/grids", json=body)
        assert r.status_code == 422
        assert set(fields(r.json())) == {
            "body.eval_options.eval_knn.train_limit",
            "body.eval_options.eval_knn.ks.0",
        }
        unknown = [e for e in r.json()["errors"] if e["field"].endswith("train_limit")]
        assert "ks" in unknown[0]["message"]  # the valid options are named
        job = {
            "config": tiny(),
            "evals": ["eval_linear"],
            "evals_options": {"eval_linear": {"lr": -1}},
        }
        r = c.post("/v1/jobs", json=job)
        assert r.status_code == 422 and fields(r.json()) == ["body.evals_options.eval_linear.lr"]
        ev = {"kind": "eval_attention", "config": tiny(), "source_checkpoint": "x",
              "eval_options": {"threshold": 2}}  # fmt: skip
        r = c.post("/v1/jobs", json=ev)
        assert "body.eval_options.threshold" in fields(r.json())
        ok = grid_body(eval_options={"eval_knn": {"ks": [10, 20], "data": {"limit": 8}}})
        assert c.post("/v1/grids", json=ok).status_code == 201


def test_bad_seeds_are_refused_naming_the_field_and_store_nothing(server: Server) -> None:
    cases = [
        (grid_body(seeds=[]), ["body.seeds"], "at least one seed"),
        (grid_body(seeds=[0, 1, 0]), ["body.seeds.2"], "listed twice"),
        (grid_body(seeds=[0, "one"]), ["body.seeds.1"], "integer"),
        (grid_body(seeds=[0, 1.5]), ["body.seeds.1"], "integer"),
        (grid_body(seed=[0, 1]), ["body.seed"], "unknown field"),
        (grid_body(seeds=[0], axes={"train.seed": [1, 2]}), ["body.seeds"], "one place"),
        (grid_body(seeds=[0], overrides=[{"train.seed": 3}]), ["body.seeds"], "one place"),
    ]
    with server.client("alice") as c:
        before = c.get("/v1/grids", params={"limit": 1000}).json()["items"]
        for body, want, says in cases:
            for dry in ("false", "true"):
                r = c.post("/v1/grids", params={"dry_run": dry}, json=body)
                assert r.status_code == 422 and fields(r.json()) == want, (body, r.text)
                assert says in r.json()["errors"][0]["message"], r.text
        assert c.get("/v1/grids", params={"limit": 1000}).json()["items"] == before
        plan = c.post("/v1/grids", params={"dry_run": "true"}, json=grid_body(seeds=[0, 1, 2]))
        assert plan.status_code == 200, plan.text
        got = plan.json()
        assert (got["n_runs"], got["n_baseline_jobs"], got["n_jobs"]) == (12, 1, 12 * 2 + 1)


def test_bad_early_stopping_is_refused_naming_the_field_and_stores_nothing(
    server: Server,
) -> None:
    cfg = tiny(train={"epochs": 4}, eval={"knn_every_epochs": 2})
    cases = [
        ({"rungs": [2, 4]}, ["body.early_stopping.rungs.1"], "not before the last epoch 4"),
        ({"rungs": [3]}, ["body.early_stopping.rungs.0"], "measured every 2 epochs"),
        ({"rungs": [2], "patience": 1}, ["body.early_stopping.patience"], "unknown field"),
        ({"metric": "linear"}, ["body.early_stopping.metric"], "knn_top1"),
    ]
    with server.client("alice") as c:
        before = c.get("/v1/grids", params={"limit": 1000}).json()["items"]
        for es, want, says in cases:
            r = c.post("/v1/grids", json=grid_body(base_config=cfg, early_stopping=es))
            assert r.status_code == 422 and fields(r.json()) == want, (es, r.text)
            assert says in r.json()["errors"][0]["message"], r.text
        assert c.get("/v1/grids", params={"limit": 1000}).json()["items"] == before
        ok = c.post("/v1/grids", json=grid_body(base_config=cfg, early_stopping={"rungs": [2]}))
        assert ok.status_code == 201, ok.text
        assert ok.json()["early_stopping"]["rungs"] == [2]


def test_extend_conflicts_are_409_and_bad_values_422_and_store_nothing(server: Server) -> None:
    with server.client("alice") as c:
        grid = c.post("/v1/grids", json=grid_body(seeds=[0])).json()
        path = f"/v1/grids/{grid['id']}/extend"
        for body, says in [
            ({"axes": {"loss.teacher_temp": [0.04]}}, "already a value"),
            ({"axes": {"optim.lr": [0.001]}}, "not an axis"),
            ({"base_config": tiny(optim={"lr": 0.001})}, "base_config differs"),
            ({"seeds": [0]}, "already a seed"),
        ]:
            r = c.post(path, json=body)
            assert r.status_code == 409 and says in r.json()["detail"], r.text
        r = c.post(path, json={"axes": {"crops.local_number": [-1]}})
        assert r.status_code == 422 and fields(r.json()) == ["body.axes.crops.local_number.2"]
        assert c.get(f"/v1/grids/{grid['id']}").json()["jobs"] == grid["jobs"]
        r = c.post(path, json={"axes": {"crops.local_number": [4]}, "seeds": [1]})
        assert r.status_code == 200, r.text
        extended = r.json()
        assert extended["n_combinations"] == 6 and extended["seeds"] == [0, 1]
        assert extended["axes"]["crops.local_number"] == [1, 2, 4]
        assert c.post("/v1/grids/grid-nope/extend", json={"seeds": [2]}).status_code == 404
