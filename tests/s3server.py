"""A real S3-compatible HTTP server on 127.0.0.1 for tests: moto's standalone server.

``moto_server`` runs in its own process (:func:`worker.local_server.local_server`: its own
session, stopped by its PID), so a job process, a DataLoader worker or an ``mlflow server``
reaches it over HTTP exactly as it would reach MinIO or AWS. :meth:`S3Server.environment`
gives the standard AWS variables that point every client (s3fs, boto3, botocore) at it.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from worker.local_server import free_port, local_server

MOTO_BIN = str(Path(sys.executable).with_name("moto_server"))


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str

    def environment(self) -> dict[str, str]:
        """The AWS variables pointing s3fs/boto3 at this server (fixed test credentials)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "dino-test",
            "AWS_SECRET_ACCESS_KEY": "dino-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def url(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])


@contextmanager
def moto_s3_server(log_dir: Path, bucket: str = "dino-test") -> Iterator[S3Server]:
    """Start ``moto_server`` on a free port, create ``bucket``, yield, stop it by its PID."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    cmd = [MOTO_BIN, "-H", "127.0.0.1", "-p", str(port)]
    with local_server(cmd, f"{url}/moto-api/", log_dir / f"moto-{port}.log", 120.0):
        req = urllib.request.Request(f"{url}/{bucket}", method="PUT")
        with urllib.request.urlopen(req, timeout=30):
            pass
        yield S3Server(url, bucket)


@pytest.fixture(scope="package")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto S3 server for the test package, with the AWS variables set for this process
    and its children (restored afterwards)."""
    with (
        moto_s3_server(tmp_path_factory.mktemp("moto")) as server,
        pytest.MonkeyPatch.context() as mp,
    ):
        for key, value in server.environment().items():
            mp.setenv(key, value)
        for key in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
            mp.delenv(key, raising=False)
        yield server
