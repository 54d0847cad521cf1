"""deploy/ray/cluster-aws.yaml: passes the Ray cluster launcher's own preparation and schema
validation (ray.autoscaler._private.util, no cloud access), and fits the deployment."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.deploy.deployfiles import ENV_DIR, LAUNCHER, REPO, load_yaml


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load_yaml(LAUNCHER)


def test_ray_prepares_and_validates_the_config(config: dict[str, Any]) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["head_node_type"] == "head"
    assert prepared["available_node_types"]["head"]["max_workers"] == 0


def test_the_validator_rejects_a_broken_config(config: dict[str, Any]) -> None:
    """The check above is not vacuous: an unknown field and a bad min/max both fail."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    typo = copy.deepcopy(config)
    typo["available_node_types"]["gpu_worker"]["min_worker"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(typo))
    too_many = copy.deepcopy(config)
    too_many["available_node_types"]["gpu_worker"]["min_workers"] = config["max_workers"] + 1
    with pytest.raises(ValueError, match="max_workers"):
        validate_config(prepare_config(too_many))


def test_gpu_worker_type_scales_between_its_bounds(config: dict[str, Any]) -> None:
    worker = config["available_node_types"]["gpu_worker"]
    assert 0 <= worker["min_workers"] <= worker["max_workers"] <= config["max_workers"]
    assert worker["resources"]["GPU"] >= 1
    assert worker["node_config"]["InstanceType"].startswith(("g", "p"))


def test_every_node_runs_the_image_with_shared_storage(config: dict[str, Any]) -> None:
    docker = config["docker"]
    assert docker["image"].endswith("/dino-orchestrator:latest")
    mounts = dict(
        opt.split()[1].split(":")[::-1] for opt in docker["run_options"] if opt.startswith("-v ")
    )
    assert set(mounts) == {"/shared", "/data"}, mounts
    init = " ".join(config["initialization_commands"])
    for host_path in mounts.values():
        assert host_path.startswith("/mnt/dino/") and "mount -t nfs4" in init


def test_file_mounts_are_the_env_files_made_from_the_templates(config: dict[str, Any]) -> None:
    for remote, local in config["file_mounts"].items():
        assert remote.startswith("~/dino-env/")
        assert (REPO / (local + ".example")).is_file(), f"{local} has no template"
        assert (REPO / local).parent == ENV_DIR


def test_start_commands_carry_the_ray_token_and_ports(config: dict[str, Any]) -> None:
    from ray._private import ray_constants

    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    for cmds in (head, worker):
        assert ". ~/dino-env/ray.env" in cmds and "set -a" in cmds
    assert f"--port={ray_constants.DEFAULT_PORT}" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--num-cpus=0" in head and "--num-gpus=0" in head
    assert f"--address=$RAY_HEAD_IP:{ray_constants.DEFAULT_PORT}" in worker
    assert re.search(r"nohup dino serve --host 0\.0\.0\.0 --port \d+", head)
    assert "RAY_ADDRESS=auto" in head, "dino serve must join the local head"
