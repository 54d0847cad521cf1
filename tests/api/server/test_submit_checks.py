"""Configs that could only fail are refused at submit with a 422 naming the field, through a
real server: an architecture timm cannot build, absurd sizes, image_folder without a root, a
root that does not exist, the batched pipeline on files, unknown evaluation options, and a
network whose training cannot fit one worker's memory (issue 16, items 2 and 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Server, running_server
from tests.api.helpers import fields, grid_body, tiny

ATTACKS = [  # (config sections, the field the 422 must name)
    ({"model": {"arch": "not_a_timm_model"}}, "body.config.model.arch"),
    ({"model": {"mlp_ratio": 1e308}}, "body.config.model.mlp_ratio"),
    ({"model": {"depth": 17607}}, "body.config.model.depth"),
    ({"data": {"num_workers": 42549629670}}, "body.config.data.num_workers"),
    ({"crops": {"local_size": 2147483648}}, "body.config.crops.local_size"),
    ({"data": {"dataset": "image_folder"}}, "body.config.data.root"),
]


def _post(server: Server, body: dict[str, Any], path: str = "/v1/jobs") -> Any:
    with server.client("alice") as c:
        return c.post(path, json=body)


@pytest.mark.parametrize(("sections", "field"), ATTACKS)
def test_configs_that_can_only_fail_are_422(
    server: Server, sections: dict[str, Any], field: str
) -> None:
    r = _post(server, {"config": tiny(**sections)})
    assert r.status_code == 422, r.text
    assert fields(r.json()) == [field]


def test_the_empty_job_does_not_queue_the_paper_default_without_data(server: Server) -> None:
    r = _post(server, {})
    assert r.status_code == 422 and fields(r.json()) == ["body.config.data.root"]
    assert "needs data.root" in r.json()["errors"][0]["message"]


def test_image_folder_needs_an_existing_root_and_the_per_image_pipeline(server: Server) -> None:
    root = Path(server.settings.dataset_roots[0])
    data = {"dataset": "image_folder", "root": str(root / "not-yet")}
    r = _post(server, {"config": tiny(data=data)})
    assert r.status_code == 422 and fields(r.json()) == ["body.config.data.root"]
    assert "not an existing directory" in r.json()["errors"][0]["message"]
    r = _post(server, {"config": tiny(data={"root": str(root / "nope")})})  # any data set
    assert r.status_code == 422 and fields(r.json()) == ["body.config.data.root"]
    (root / "imgs").mkdir(exist_ok=True)
    data["root"] = str(root / "imgs")
    r = _post(server, {"config": tiny(data=data, crops={"pipeline": "batched"})})
    assert r.status_code == 422 and fields(r.json()) == ["body.config.crops.pipeline"]
    assert _post(server, {"config": tiny(data=data)}).status_code == 201


def test_unknown_evaluation_options_are_422_wherever_they_are_given(server: Server) -> None:
    knn = {"train_limit": 5}
    r = _post(server, {"config": tiny(), "evals": ["eval_knn"], "evals_options": {"eval_knn": knn}})
    assert fields(r.json()) == ["body.evals_options.eval_knn.train_limit"]
    r = _post(server, grid_body(eval_options={"eval_knn": knn}), "/v1/grids")
    assert fields(r.json()) == ["body.eval_options.eval_knn.train_limit"]
    data = {"eval_knn": {"data": {"split": "x", "train": 1}}}
    r = _post(server, {"config": tiny(), "evals": ["eval_knn"], "evals_options": data})
    assert fields(r.json()) == ["body.evals_options.eval_knn.data.train"]


def test_a_network_that_cannot_fit_one_accelerator_is_422(server: Server) -> None:
    big = {"arch": "vit_custom", "embed_dim": 8192, "depth": 128, "num_heads": 64}
    body = {"config": tiny(model=big), "resources": {"num_gpus": 1}}
    r = _post(server, body)
    assert r.status_code == 422 and fields(r.json()) == ["body.config.model.arch"], r.text
    message = r.json()["errors"][0]["message"]
    assert "one accelerator has 256.0 GiB" in message and "M parameters" in message
    # a CPU job is not checked while no orchestrator has reported the nodes' memory
    assert _post(server, {**body, "resources": {"num_gpus": 0}}).status_code == 201


def test_cpu_workers_memory_bounds_the_batch(api_home: Path, tmp_path: Path) -> None:
    """With a worker memory (the setting, or the largest node an orchestrator reports), the
    paper's ViT-S/16 batch of 1024 on one CPU worker is refused, naming the batch size."""
    with running_server(tmp_path / "mem.db", api_home / "datasets", worker_memory_gb=64.0) as srv:
        paper = {"data": {"dataset": "synthetic"}}
        r = _post(srv, {"config": paper})
        assert r.status_code == 422 and fields(r.json()) == ["body.config.train.batch_size"]
        assert "has 64.0 GiB" in r.json()["errors"][0]["message"]
        assert _post(srv, {"config": paper, "resources": {"num_workers": 16}}).status_code == 201
        grid = grid_body(base_config=paper, axes={"train.batch_size": [64, 1024]})
        r = _post(srv, grid, "/v1/grids")
        assert r.status_code == 422 and fields(r.json()) == ["body.axes.train.batch_size"]
