"""``dino serve``: the API (uvicorn, this process) with the orchestrator beside it.

The orchestrator (``python -m orchestrator``) and, on request, ``mlflow ui`` run as child
processes in their own sessions; on Ctrl-C or SIGTERM uvicorn stops serving, then each child
gets SIGTERM by PID and, if still alive after its grace period, SIGKILL together with its
descendants (a local Ray's raylet and gcs ignore SIGTERM). If the orchestrator exits on its
own, ``dino serve`` stops the same way and exits with status 1 (an API that queues jobs no
one runs would hide the failure), printing the last line of its log. If ``dino serve``
itself is killed (``kill -9``), the orchestrator notices (``--parent-pid``:
:mod:`orchestrator.lifeline`) and stops with its local Ray.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import psutil

from api.cli.ports import check_serve_ports
from api.cli.tether import tether_command
from api.server.settings import ApiSettings
from worker.deployment import default_database_url, default_tracking_uri, dino_home
from worker.env import apply_worker_env
from worker.mlflow_store import prepare_tracking_store


class StopRequested(Exception):
    """Ctrl-C or SIGTERM outside uvicorn's own handling (startup, or re-raised after it)."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(signum).name)


@dataclass
class Child:
    """A child process started by ``dino serve``."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    grace_s: float
    log: IO[bytes] | None = field(default=None, repr=False)
    # its process tree as last seen alive: what to clean up if it dies first (a killed
    # orchestrator leaves its local Ray's processes behind, re-parented away from us)
    seen_descendants: list[psutil.Process] = field(default_factory=list, repr=False)


def start_child(
    name: str, args: list[str], log_path: Path, grace_s: float, env: dict[str, str]
) -> Child:
    """Start ``args`` in a new session, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    proc = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    return Child(name, proc, log_path, grace_s, log)


def stop_child(child: Child) -> int | None:
    """SIGTERM by PID, wait ``grace_s``, then SIGKILL it and its descendants; the exit code."""
    proc = child.proc
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    descendants += [p for p in child.seen_descendants if p not in descendants]
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=child.grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    for p in descendants:  # what the child left behind (e.g. Ray processes after a SIGKILL)
        with contextlib.suppress(psutil.Error):
            if p.is_running():
                p.kill()
    psutil.wait_procs(descendants, timeout=10)
    if child.log is not None:
        child.log.close()
    return proc.returncode


def last_line(log_path: Path) -> str:
    """``: <the log's last non-empty line>`` (why a child exited, usually), or ``""``."""
    try:
        with log_path.open("rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - 4096, 0))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f": {lines[-1].strip()}" if lines else ""


def watch_child(
    child: Child, stopping: threading.Event, on_exit: Callable[[], None] | None = None
) -> None:
    """Warn on stderr if ``child`` exits while the server still runs, then ``on_exit()``."""

    def _wait() -> None:
        while (code := child.proc.poll()) is None:
            with contextlib.suppress(psutil.Error):
                child.seen_descendants = psutil.Process(child.proc.pid).children(recursive=True)
            time.sleep(1.0)
        if not stopping.is_set():
            print(
                f"dino serve: the {child.name} (pid {child.proc.pid}) exited with code {code}; "
                f"see {child.log_path}{last_line(child.log_path)}",
                file=sys.stderr,
                flush=True,
            )
            if on_exit is not None:
                on_exit()

    threading.Thread(target=_wait, name=f"watch-{child.name}", daemon=True).start()


def orchestrator_args(
    database_url: str, num_cpus: int | None, ray_address: str | None, job_fn: str | None
) -> list[str]:
    args = [sys.executable, "-m", "orchestrator", "--database-url", database_url]
    args += ["--parent-pid", str(os.getpid())]  # it stops when this process dies
    if num_cpus is not None:
        args += ["--num-cpus", str(num_cpus)]
    if ray_address:
        args += ["--ray-address", ray_address]
    if job_fn:
        args += ["--job-fn", job_fn]
    return args


def mlflow_ui_command(tracking_uri: str, port: int) -> list[str]:
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    return [
        mlflow,
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def serve(
    *,
    host: str,
    port: int,
    num_cpus: int | None,
    ray_address: str | None,
    job_fn: str | None,
    orchestrator: bool,
    mlflow_ui: bool,
    mlflow_port: int,
    log_level: str = "info",
) -> None:
    """Run until Ctrl-C/SIGTERM; children are stopped by PID on the way out."""
    check_serve_ports(host, port, mlflow_port if mlflow_ui else None)  # before anything starts
    apply_worker_env()  # this process and its children: telemetry off, before MLflow loads
    import uvicorn

    from api.server.app import create_app
    from orchestrator.db import open_database

    home = dino_home()
    db_url = default_database_url()
    db = open_database(db_url)  # migrate once, before the orchestrator opens it too
    tracking_uri = default_tracking_uri()
    prepare_tracking_store(tracking_uri)
    ui_url = f"http://127.0.0.1:{mlflow_port}"
    settings = ApiSettings.from_env(mlflow_ui_url=ui_url)
    env = dict(os.environ, DINO_DATABASE_URL=db_url, MLFLOW_TRACKING_URI=tracking_uri)
    children: list[Child] = []
    stopping = threading.Event()
    orchestrator_died = threading.Event()

    def _orchestrator_died() -> None:
        # an API whose jobs would never run is worse than none: stop serving, exit 1, and let
        # the supervisor (compose, Kubernetes, the user) restart the pair
        orchestrator_died.set()
        os.kill(os.getpid(), signal.SIGTERM)

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if orchestrator:
            args = orchestrator_args(db_url, num_cpus, ray_address, job_fn)
            child = start_child("orchestrator", args, home / "logs" / "orchestrator.log", 25, env)
            children.append(child)
            watch_child(child, stopping, _orchestrator_died)
        if mlflow_ui:
            # tethered: a kill -9 of this process must not orphan the UI's web server
            args = tether_command(os.getpid(), mlflow_ui_command(tracking_uri, mlflow_port))
            child = start_child("mlflow ui", args, home / "logs" / "mlflow-ui.log", 15, env)
            children.append(child)
            watch_child(child, stopping)
        base = f"http://{host}:{port}"
        print(f"dino serve: state in {home} (database {db.display_url()})", flush=True)
        print(f"  API:          {base}  (docs: {base}/docs)", flush=True)
        for c in children:
            print(f"  {c.name + ':':13} pid {c.proc.pid}, log {c.log_path}", flush=True)
        if not mlflow_ui:
            cmd = " ".join(mlflow_ui_command(tracking_uri, mlflow_port)[1:])
            print(f"  MLflow UI:    {ui_url}  (start it with: mlflow {cmd})", flush=True)
        else:
            print(f"  MLflow UI:    {ui_url}", flush=True)
        print(f"  client:       export DINO_API_URL={base}", flush=True)
        config = uvicorn.Config(
            create_app(settings, db), host=host, port=port, log_level=log_level, workers=1
        )
        uvicorn.Server(config).run()  # returns on Ctrl-C/SIGTERM, then re-raises the signal
    except StopRequested:
        pass
    finally:
        stopping.set()
        for child in reversed(children):
            code = stop_child(child)
            print(f"dino serve: {child.name} (pid {child.proc.pid}) stopped, code {code}")
        db.dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if orchestrator_died.is_set():
        raise SystemExit(
            f"dino serve: stopped because the orchestrator exited; see {home / 'logs'}"
        )
