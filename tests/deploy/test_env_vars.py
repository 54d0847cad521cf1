"""Environment variables of the deployment against the code: every variable the deploy files
set for our image is read by our code or by the package it belongs to, and every variable our
code reads is either set where production needs it or known to be optional."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.deployfiles import (
    COMPOSE,
    ENV_DIR,
    dockerfile_env,
    kube_objects,
    load_yaml,
    pod_containers,
    python_env_reads,
    read_by_our_code,
    read_by_third_party,
    read_env_file,
)

# Set in the Dockerfile for the build toolchain (uv, the virtualenv), not read by a service.
BUILD_ENV = {"PATH", "VIRTUAL_ENV", "UV_PYTHON_INSTALL_DIR", "UV_LINK_MODE", "UV_COMPILE_BYTECODE"}
OUR_SERVICES = ("mlflow", "ray-head", "ray-worker", "api")

# Without these the API/orchestrator silently falls back to state inside its own container:
# a SQLite job database, an embedded MLflow store, a local Ray, checkpoints on local disk.
PRODUCTION_REQUIRED = {
    "DINO_DATABASE_URL",
    "RAY_ADDRESS",
    "MLFLOW_TRACKING_URI",
    "DINO_STORAGE_URI",
}
# Read by the code, safe to leave at their defaults (or set by Ray/torch themselves).
OPTIONAL = {
    "DINO_HOME": "local state dir; the image sets /var/lib/dino",
    "DINO_DATA_DIR": "data set dir; the image sets /data",
    "DINO_DATA_DOWNLOAD": "torchvision downloads allowed unless 0",
    "DINO_DATASET_ROOTS": "defaults to DINO_DATA_DIR and the system data sets",
    "DINO_DATASET_URIS": "URL prefixes (s3://...) a data.root may name; none by default",
    "DINO_MLFLOW_UI_URL": "only the links the API prints",
    "LOCAL_RANK": "set by the DDP launcher",
    "DINO_API_URL": "the `dino` CLI client's server, not the server's own setting",
    "DINO_TOKEN": "the `dino` CLI client's bearer token",
}


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
    for env_file in service.get("env_file", []):
        template = COMPOSE.parent / (env_file + ".example")
        env.update(read_env_file(template))
    return env


def _set_for_our_image() -> dict[str, str]:
    """name -> where it is set."""
    where: dict[str, str] = {}
    for key in set(dockerfile_env()) - BUILD_ENV:
        where[key] = "Dockerfile ENV"
    services = load_yaml(COMPOSE)["services"]
    for name in OUR_SERVICES:
        for key in _compose_env(services[name]):
            where.setdefault(key, f"compose service {name}")
    for obj in [*kube_objects("Deployment"), *kube_objects("RayCluster")]:
        for container in pod_containers(obj):
            for entry in container.get("env", []):
                where.setdefault(entry["name"], f"{obj['kind']} {obj['metadata']['name']}")
    for template in ENV_DIR.glob("*.env.example"):
        # read by the postgres and minio images only
        if template.name not in ("postgres.env.example", "minio.env.example"):
            for key in read_env_file(template):
                where.setdefault(key, str(template.name))
    return where


@pytest.mark.parametrize("name", sorted(_set_for_our_image()))
def test_every_variable_set_for_our_image_is_read_by_someone(name: str) -> None:
    where = _set_for_our_image()[name]
    reader = "our code" if read_by_our_code(name) else read_by_third_party(name)
    assert reader is not None, (
        f"{name} (set in {where}) is read neither by our code (dino_core, worker, orchestrator, "
        "api, deploy/docker scripts) nor by the package its prefix names: a typo or a stale "
        "variable"
    )


def test_every_variable_our_code_reads_is_classified() -> None:
    unknown = python_env_reads() - PRODUCTION_REQUIRED - set(OPTIONAL)
    assert not unknown, (
        f"the code reads {sorted(unknown)} but the deployment does not know them: add each to "
        "PRODUCTION_REQUIRED (and set it in deploy/) or OPTIONAL here"
    )
    assert python_env_reads() >= PRODUCTION_REQUIRED, "a required variable is no longer read"


def test_production_variables_are_set_for_the_api_and_orchestrator() -> None:
    api = _compose_env(load_yaml(COMPOSE)["services"]["api"])
    missing = PRODUCTION_REQUIRED - set(api)
    assert not missing, f"compose service api lacks {sorted(missing)}"
    assert api["DINO_DATABASE_URL"].startswith("postgresql+psycopg://")
    (deployment,) = [d for d in kube_objects("Deployment") if d["metadata"]["name"] == "dino-api"]
    (container,) = pod_containers(deployment)
    names = {e["name"] for e in container["env"]}
    assert names >= PRODUCTION_REQUIRED, f"dino-api lacks {sorted(PRODUCTION_REQUIRED - names)}"


def test_ray_token_auth_is_on_for_every_ray_process() -> None:
    from ray._private.authentication.authentication_token_setup import AUTH_MODE_ENV_VAR

    ray_env = read_env_file(ENV_DIR / "ray.env.example")
    assert ray_env[AUTH_MODE_ENV_VAR] == "token"
    assert "RAY_AUTH_TOKEN" in ray_env
    services = load_yaml(COMPOSE)["services"]
    for name in ("ray-head", "ray-worker", "api"):
        env = _compose_env(services[name])
        assert env.get(AUTH_MODE_ENV_VAR) == "token", f"{name} runs Ray without token auth"


def test_telemetry_stays_off_even_where_compose_overrides_the_environment() -> None:
    image = dockerfile_env()
    for name, svc in load_yaml(COMPOSE)["services"].items():
        if name not in OUR_SERVICES:
            continue
        env = {**image, **_compose_env(svc)}
        assert env["MLFLOW_DISABLE_TELEMETRY"] == "true", name
        assert env["RAY_USAGE_STATS_ENABLED"] == "0", name
        assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false", name


def test_the_operator_guide_documents_every_variable() -> None:
    from tests.deploy.deployfiles import DEPLOY

    guide = (DEPLOY / "README.md").read_text()
    table = guide[guide.index("## Environment variables") :]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]*)(?:_\*)?`", table))
    prefixes = {name for name in documented if f"`{name}_*`" in table}
    names = (set(_set_for_our_image()) | python_env_reads()) - {"LOCAL_RANK"}  # torch's own
    missing = {
        n for n in names if n not in documented and not any(n.startswith(p + "_") for p in prefixes)
    }
    assert not missing, f"deploy/README.md's variable table lacks {sorted(missing)}"
