"""Start a local ``mlflow server`` on 127.0.0.1 for tests, screenshots and demos.

The server keeps runs in a sqlite file and serves artifacts itself
(``--artifacts-destination``: a directory under ``root``, or a URL such as
``s3://bucket/mlartifacts``, which the server writes through boto3 with the AWS variables of
this process: ``AWS_ENDPOINT_URL``, credentials, region); it is stopped by its process id
when the context exits (:func:`worker.local_server.local_server`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from worker.local_server import free_port, local_server

MLFLOW_BIN = str(Path(sys.executable).with_name("mlflow"))
__all__ = ["MLFLOW_BIN", "free_port", "local_mlflow_server"]


@contextmanager
def local_mlflow_server(
    root: Path,
    port: int | None = None,
    start_timeout_s: float = 120.0,
    artifacts_destination: str | None = None,
) -> Iterator[str]:
    """Yield the URL of an ``mlflow server`` keeping its state under ``root``."""
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [
        MLFLOW_BIN, "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", artifacts_destination or str(root / "server-artifacts"),
        "--workers", "1",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with local_server(cmd, f"{url}/health", root / f"server-{port}.log", start_timeout_s, env):
        yield url
