"""Test helpers: a real ``mlflow server`` on 127.0.0.1, free ports, tiny DINO configs."""

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
from typing import Any

import worker  # noqa: F401  (sets the telemetry-off environment)

MLFLOW_BIN = str(Path(sys.executable).with_name("mlflow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mlflow_server(root: Path, port: int | None = None) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 with a sqlite backend; stopped by PID on exit."""
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(root / f"server-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            MLFLOW_BIN,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(root / "server-artifacts"),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start; see {root}/server-{port}.log")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started, by its id
            proc.wait(timeout=15)
        log.close()


def tiny_config_dict(**train: Any) -> dict[str, Any]:
    """A DINO config that trains in well under a second per step on 2 CPU cores."""
    cfg: dict[str, Any] = {
        "model": {
            "arch": "vit_custom",
            "patch_size": 4,
            "embed_dim": 32,
            "depth": 2,
            "num_heads": 2,
            "drop_path_rate": 0.0,
        },
        "head": {"out_dim": 64, "hidden_dim": 64, "bottleneck_dim": 32},
        "crops": {"global_size": 16, "local_size": 8, "local_number": 2},
        "loss": {"warmup_teacher_temp_epochs": 1},
        "optim": {"warmup_epochs": 1},
        "data": {"dataset": "synthetic", "synthetic_size": 64, "synthetic_image_size": 32},
        "train": {
            "epochs": 2,
            "batch_size": 16,
            "log_every_steps": 2,
            "device": "cpu",
            "threads": 1,
            **train,
        },
    }
    return cfg
