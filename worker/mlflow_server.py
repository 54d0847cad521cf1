"""Start a local ``mlflow server`` on 127.0.0.1 for tests, screenshots and demos.

The server keeps runs in a sqlite file and serves artifacts itself
(``--artifacts-destination``); it is stopped by its process id when the context exits
(SIGTERM, then SIGKILL of the process group it was started in).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MLFLOW_BIN = str(Path(sys.executable).with_name("mlflow"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_mlflow_server(
    root: Path, port: int | None = None, start_timeout_s: float = 120.0
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
    log_path = root / f"server-{port}.log"
    cmd = [
        MLFLOW_BIN, "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", str(root / "server-artifacts"), "--workers", "1",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server on port {port} did not start within {start_timeout_s:.0f} s "
                    f"(exit code {proc.poll()}); see {log_path}"
                )
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group started above, by its id
            proc.wait(timeout=15)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False
