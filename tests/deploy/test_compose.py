"""deploy/compose.yaml: services, health checks, secrets, shared storage, GPUs, and the ports the
code and the servers actually use; `docker compose config` when a Compose v2 CLI is here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deployfiles import COMPOSE, DEPLOY, REPO, load_yaml

OUR_SERVICES = ("mlflow", "ray-head", "ray-worker", "api")
RAY_NODES = ("ray-head", "ray-worker", "api")  # the API joins Ray as a driver node
S3_CLIENTS = ("mlflow", *RAY_NODES)  # every process that reads or writes s3://
ONE_SHOT = ("minio-init",)  # runs once and exits: no health, waited for by completion


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return compose["services"][name]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "write environment: as a mapping"
    return {k: str(v) for k, v in env.items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> volume name (or host path)."""
    out = {}
    for spec in service.get("volumes", []):
        src, dst = spec.split(":")[:2]
        out[dst] = src
    return out


def _interpolated_default(value: str) -> str:
    """``${VAR:-default}`` -> ``default`` (the value without an override)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_expected_services_each_with_a_healthcheck(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "minio", *ONE_SHOT, *OUR_SERVICES}
    for name, svc in compose["services"].items():
        if name in ONE_SHOT:
            assert svc["restart"] == "no", f"{name} runs once"
            continue
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"service {name} has no healthcheck"


def test_our_services_run_the_image_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    for name in OUR_SERVICES:
        svc = _service(compose, name)
        build = svc["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "docker" / "Dockerfile"
        ), f"service {name} builds another Dockerfile"
        assert _interpolated_default(svc["image"]) == "dino-orchestrator:latest"


def test_depends_on_waits_for_healthy_services_that_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in compose["services"], f"{name} depends on unknown service {dep}"
            wanted = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond == {"condition": wanted}, f"{name} -> {dep}: {cond}"
    assert set(_service(compose, "api")["depends_on"]) == {
        "postgres",
        "mlflow",
        "ray-head",
        "minio-init",
    }
    assert "minio-init" in _service(compose, "mlflow")["depends_on"]


def test_secrets_come_from_env_files_with_committed_templates(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for env_file in svc.get("env_file", []):
            path = COMPOSE.parent / env_file
            template = path.with_name(path.name + ".example")
            assert template.is_file(), f"{name}: {env_file} has no committed {template.name}"
        for key, value in _env(svc).items():
            secret = re.search(r"PASSWORD|TOKEN|SECRET", key) or re.search(
                r"://[^/@]+:[^/@]+@", value
            )
            assert not secret, f"{name}: {key} looks like a secret inline in compose.yaml"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/env/ray.env"], cwd=REPO, capture_output=True
    )
    assert ignored.returncode == 0, "deploy/env/*.env (real secrets) must be git-ignored"


def test_ray_token_reaches_every_ray_node_and_the_driver(compose: dict[str, Any]) -> None:
    for name in RAY_NODES:
        assert "env/ray.env" in _service(compose, name)["env_file"], f"{name} lacks the token"


def test_ports_match_what_the_servers_listen_on(compose: dict[str, Any]) -> None:
    import mlflow.cli
    from ray._private import ray_constants

    mlflow_port = next(
        p.default for p in mlflow.cli.cli.commands["server"].params if p.name == "port"
    )
    cmd = _service(compose, "mlflow")["command"]
    assert cmd[cmd.index("--port") + 1] == str(mlflow_port) == "5000"
    head = _service(compose, "ray-head")["command"]
    assert f"--port={ray_constants.DEFAULT_PORT}" in head
    assert f"--dashboard-port={ray_constants.DEFAULT_DASHBOARD_PORT}" in head
    published = {
        name: [_interpolated_default(p).rsplit(":", 1)[-1] for p in svc.get("ports", [])]
        for name, svc in compose["services"].items()
    }
    assert published["ray-head"] == ["8265"] and published["mlflow"] == ["5000"]
    api_cmd = _service(compose, "api")["command"]
    api_port = api_cmd[api_cmd.index("--port") + 1]
    assert published["api"] == [api_port]
    from urllib.parse import urlsplit

    from api.cli.client import DEFAULT_API_URL

    assert str(urlsplit(DEFAULT_API_URL).port) == api_port, "`dino` clients' default URL"
    assert _env(_service(compose, "api"))["DINO_HEALTHCHECK_PORT"] == api_port, "healthcheck port"
    for svc in compose["services"].values():
        for port in svc.get("ports", []):
            assert _interpolated_default(port).startswith("127.0.0.1:"), (
                f"{port}: publish on 127.0.0.1 unless DINO_BIND_ADDRESS says otherwise"
            )


def test_addresses_point_at_the_services_and_their_ports(compose: dict[str, Any]) -> None:
    api = _env(_service(compose, "api"))
    assert api["RAY_ADDRESS"] == "ray-head:6379"
    assert _env(_service(compose, "ray-worker"))["RAY_HEAD_ADDRESS"] == api["RAY_ADDRESS"]
    assert api["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    hosts = _interpolated_default(_env(_service(compose, "mlflow"))["MLFLOW_SERVER_ALLOWED_HOSTS"])
    from mlflow.server.security_utils import is_allowed_host_header

    allowed = hosts.split(",")
    assert is_allowed_host_header(allowed, "mlflow:5000"), "workers' Host header refused"
    assert is_allowed_host_header(allowed, "localhost:5000")
    assert not is_allowed_host_header(allowed, "evil.example.com")


def _client_env(compose: dict[str, Any], name: str) -> dict[str, str]:
    """A service's environment with its env files' templates (what the process sees)."""
    from tests.deploy.deployfiles import read_env_file

    svc = _service(compose, name)
    env: dict[str, str] = {}
    for env_file in svc.get("env_file", []):
        env.update(read_env_file(COMPOSE.parent / (env_file + ".example")))
    return {**env, **_env(svc)}


def test_checkpoints_and_artifacts_live_in_the_minio_bucket_minio_init_creates(
    compose: dict[str, Any],
) -> None:
    from urllib.parse import urlsplit

    storage = urlsplit(_env(_service(compose, "api"))["DINO_STORAGE_URI"])
    artifacts = urlsplit(_env(_service(compose, "mlflow"))["MLFLOW_ARTIFACTS_DESTINATION"])
    assert storage.scheme == artifacts.scheme == "s3"
    assert storage.netloc == artifacts.netloc == "dino" and storage.path != artifacts.path
    init = " ".join(_service(compose, "minio-init")["entrypoint"])
    assert f"mc mb --ignore-existing dino/{storage.netloc}" in init
    minio = _service(compose, "minio")
    api_port = minio["command"][minio["command"].index("--address") + 1].lstrip(":")
    assert "http://minio:" + api_port in init
    assert _mounts(minio)["/data"] in compose["volumes"]
    for name in S3_CLIENTS:
        env = _client_env(compose, name)
        assert env["AWS_ENDPOINT_URL"] == f"http://minio:{api_port}", name
        assert "env/s3.env" in _service(compose, name)["env_file"], f"{name} lacks the S3 key"
        assert env.get("AWS_DEFAULT_REGION"), name


def test_the_s3_clients_reach_minio_through_the_code_that_jobs_use(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The api's environment, as dino_core.storage reads it, and MinIO's own credentials."""
    from dino_core.storage import s3_options
    from tests.deploy.deployfiles import ENV_DIR, read_env_file

    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in _client_env(compose, "api").items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    opts = s3_options()
    assert opts["endpoint_url"] == "http://minio:9000"
    assert opts["client_kwargs"] == {"region_name": "us-east-1"}
    root = read_env_file(ENV_DIR / "minio.env.example")
    assert (opts["key"], opts["secret"]) == (root["MINIO_ROOT_USER"], root["MINIO_ROOT_PASSWORD"])


def test_every_node_mounts_the_data_sets_and_postgres_keeps_a_volume(
    compose: dict[str, Any],
) -> None:
    data = {_mounts(_service(compose, n)).get("/data") for n in RAY_NODES}
    assert data == {"datasets"}
    assert _mounts(_service(compose, "postgres"))["/var/lib/postgresql/data"] in compose["volumes"]


def test_gpu_workers_reserve_gpus_and_share_a_lock_volume(compose: dict[str, Any]) -> None:
    worker = _service(compose, "ray-worker")
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert worker["command"] == ["ray-worker"]
    assert _mounts(worker)["/var/lib/dino-gpu-locks"] in compose["volumes"]
    assert "container_name" not in worker, "a fixed container name forbids --scale"
    assert not worker.get("ports"), "published ports forbid --scale"
    for name in ("ray-head", "ray-worker"):
        shm = _interpolated_default(str(_service(compose, name)["shm_size"]))
        assert re.fullmatch(r"\d+gb", shm) and int(shm[:-2]) >= 2, f"{name} shm_size {shm}"


def test_mlflow_server_uses_postgres_and_serves_artifacts(compose: dict[str, Any]) -> None:
    from tests.deploy.deployfiles import ENV_DIR, read_env_file

    mlflow = _service(compose, "mlflow")
    assert "--serve-artifacts" in mlflow["command"]
    assert _env(mlflow)["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    backend = read_env_file(ENV_DIR / "mlflow.env.example")["MLFLOW_BACKEND_STORE_URI"]
    assert backend.startswith("postgresql+psycopg://") and backend.endswith("@postgres:5432/mlflow")
    dino = read_env_file(ENV_DIR / "dino.env.example")["DINO_DATABASE_URL"]
    assert dino.endswith("@postgres:5432/dino"), "the job database must differ from MLflow's"
    init = (DEPLOY / "postgres" / "initdb" / "10-mlflow-database.sql").read_text()
    assert "CREATE DATABASE mlflow" in init
    assert _mounts(_service(compose, "postgres"))["/docker-entrypoint-initdb.d"] == (
        "./postgres/initdb"
    )


def _compose_v2() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        out = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True)
        if out.returncode == 0 and re.match(r"v?([2-9]|\d{2,})\.", out.stdout.strip()):
            return cmd
    return None


@pytest.mark.skipif(_compose_v2() is None, reason="no Compose v2 CLI (docker compose) here")
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    for template in (tmp_path / "deploy" / "env").glob("*.env.example"):
        shutil.copy(template, template.with_name(template.name.removesuffix(".example")))
    cmd = _compose_v2()
    assert cmd is not None
    out = subprocess.run(
        [*cmd, "-f", str(tmp_path / "deploy" / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
