"""deploy/env/make-env.sh: real env files from the templates, with matching fresh secrets."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

from tests.deploy.deployfiles import ENV_DIR, read_env_file


def _make(env_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(env_dir / "make-env.sh")], capture_output=True, text=True, timeout=30
    )


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "env"
    shutil.copytree(ENV_DIR, target, ignore=shutil.ignore_patterns("*.env"))
    return target


def test_secrets_are_filled_in_and_shared_where_they_must_match(tmp_path: Path) -> None:
    env_dir = _copy(tmp_path)
    out = _make(env_dir)
    assert out.returncode == 0, out.stderr
    pg = read_env_file(env_dir / "postgres.env")
    ray = read_env_file(env_dir / "ray.env")
    password = pg["POSTGRES_PASSWORD"]
    assert len(password) == 48 and int(password, 16) >= 0  # 24 random bytes, hex
    token = ray["RAY_AUTH_TOKEN"]
    assert len(token) == 64 and int(token, 16) >= 0 and token != password
    user = pg["POSTGRES_USER"]
    dino = read_env_file(env_dir / "dino.env")["DINO_DATABASE_URL"]
    mlflow = read_env_file(env_dir / "mlflow.env")["MLFLOW_BACKEND_STORE_URI"]
    assert dino == f"postgresql+psycopg://{user}:{password}@postgres:5432/{pg['POSTGRES_DB']}"
    assert mlflow == f"postgresql+psycopg://{user}:{password}@postgres:5432/mlflow"
    minio, s3 = read_env_file(env_dir / "minio.env"), read_env_file(env_dir / "s3.env")
    assert s3["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert s3["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert len(minio["MINIO_ROOT_PASSWORD"]) == 48 and minio["MINIO_ROOT_PASSWORD"] != password
    for path in env_dir.glob("*.env"):
        assert "__" not in path.read_text(), f"{path.name} still has a template marker"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path.name} readable by others"
    assert {p.name for p in env_dir.glob("*.env")} == {
        p.name.removesuffix(".example") for p in ENV_DIR.glob("*.env.example")
    }


def test_existing_files_are_kept_and_each_run_draws_new_secrets(tmp_path: Path) -> None:
    env_dir = _copy(tmp_path)
    assert _make(env_dir).returncode == 0
    first = (env_dir / "ray.env").read_text()
    again = _make(env_dir)
    assert again.returncode == 0 and "ray.env exists, kept" in again.stdout
    assert (env_dir / "ray.env").read_text() == first
    (env_dir / "ray.env").unlink()
    assert _make(env_dir).returncode == 0
    assert (env_dir / "ray.env").read_text() != first


def test_the_sql_init_and_templates_agree_on_the_mlflow_database() -> None:
    mlflow = read_env_file(ENV_DIR / "mlflow.env.example")["MLFLOW_BACKEND_STORE_URI"]
    sql = (ENV_DIR.parent / "postgres" / "initdb" / "10-mlflow-database.sql").read_text()
    database = mlflow.rsplit("/", 1)[1]
    assert f"CREATE DATABASE {database};" in sql
