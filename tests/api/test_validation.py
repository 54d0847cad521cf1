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
