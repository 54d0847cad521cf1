"""Fixtures: a private DINO_HOME, a real uvicorn server on 127.0.0.1 (in a thread) over a
SQLite job database, users with bearer tokens, HTTP clients, and an orchestrator loop on a
real Ray node for the tests that run jobs."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
import uvicorn

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Submissions build the network on PyTorch's meta device (orchestrator/service/runnable.py):
# import torch and timm here once, not inside the first request (seconds; on a loaded
# machine more than the clients' timeout).
import dino_core.models  # noqa: E402, F401
from api.server.app import create_app  # noqa: E402
from api.server.auth import issue_token  # noqa: E402
from api.server.settings import ApiSettings  # noqa: E402
from orchestrator.db import Database, open_database  # noqa: E402
from orchestrator.loop import run_orchestrator  # noqa: E402
from orchestrator.settings import OrchestratorSettings  # noqa: E402
from tests.orchestrator.raynodes import RayNode, free_port, kill_node, start_head  # noqa: E402

USERS = {"alice": "user", "bob": "user", "root": "admin"}


@dataclass
class Server:
    """A running api: its URL, database, settings and one token per user name."""

    url: str
    db: Database
    settings: ApiSettings
    tokens: dict[str, str]

    def client(self, user: str | None = None, **headers: str) -> httpx.Client:
        """An httpx client, authenticated as ``user`` (None: no token)."""
        h = dict(headers)
        if user is not None:
            h["Authorization"] = f"Bearer {self.tokens[user]}"
        return httpx.Client(base_url=self.url, headers=h, timeout=60)

    def add_user(self, name: str, role: str = "user") -> str:
        self.tokens[name] = issue_token(self.db, name, role)  # type: ignore[arg-type]
        return self.tokens[name]


@pytest.fixture(scope="package")
def api_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """DINO_HOME, job storage and a dataset root for tests/api (env restored after it)."""
    home = tmp_path_factory.mktemp("api_home")
    (home / "datasets").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DINO_HOME", str(home))
        mp.setenv("DINO_STORAGE_URI", str(home / "jobs"))
        mp.setenv("DINO_DATA_DOWNLOAD", "0")
        for name in ("MLFLOW_TRACKING_URI", "DINO_DATABASE_URL", "DINO_TOKEN", "DINO_API_URL"):
            mp.delenv(name, raising=False)
        yield home


@contextmanager
def running_server(db_path: Path, data_root: Path, **settings: object) -> Iterator[Server]:
    """uvicorn serving ``create_app`` on a free 127.0.0.1 port, in a thread; stopped after."""
    db = open_database(f"sqlite:///{db_path}")
    cfg = ApiSettings.model_validate(
        {
            "dataset_roots": [str(data_root)],
            "max_grid_combinations": 16,
            **settings,
        }
    )
    tokens = {name: issue_token(db, name, role) for name, role in USERS.items()}  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(cfg, db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{port}", db, cfg, tokens)
    finally:
        server.should_exit = True
        thread.join(30)
        db.dispose()


@contextmanager
def orchestrating(srv: Server, node: RayNode, **settings: Any) -> Iterator[None]:
    """An orchestrator loop (in a thread) for ``srv``'s database on the Ray node ``node``
    (with ``srv``'s dataset roots); stopped, and Ray disconnected, after the block."""
    config = OrchestratorSettings(
        **{
            "database_url": srv.db.url,
            "ray_address": node.address,
            "namespace": "dino-api-test",
            "poll_interval_s": 0.1,
            "actor_wait_s": 0.5,
            "heartbeat_s": 0.5,
            "lease_s": 10.0,
            "dataset_roots": list(srv.settings.dataset_roots),
            **settings,
        }
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            run_orchestrator(stop, config)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=loop, name="orchestrator", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(120)
        if ray.is_initialized():
            ray.shutdown()
    assert not errors, errors


@pytest.fixture(scope="package")
def server(api_home: Path) -> Iterator[Server]:
    """One api for the request-level tests (jobs stay QUEUED: no orchestrator runs them)."""
    with running_server(api_home / "api.db", api_home / "datasets") as srv:
        yield srv


@pytest.fixture(scope="package")
def ray_head() -> Iterator[RayNode]:
    """One 2-CPU Ray head node (``ray start``, token auth) shared by the api tests that run
    jobs; killed by PID when tests/api is done, so it holds no CPUs during other packages."""
    node = start_head(num_cpus=2)
    try:
        yield node
    finally:
        kill_node(node)
