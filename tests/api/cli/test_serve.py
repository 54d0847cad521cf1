"""``dino serve`` as a real process tree: uvicorn on 127.0.0.1 plus the orchestrator child
(with its own local Ray), a job run through it, and a clean SIGTERM shutdown that leaves no
child process behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from api.server.auth import issue_token
from orchestrator.db import open_database
from tests.api.helpers import tiny
from tests.orchestrator.raynodes import REPO, free_port

pytestmark = pytest.mark.slow
# the `dino` command of this tree (the installed console script may name an older module)
DINO = [sys.executable, "-m", "api.cli.main"]


def _wait_healthy(url: str, proc: subprocess.Popen[str], log: Path, path: str = "/healthz") -> None:
    """Until ``url + path`` answers 200; fails at once, with the logs, when ``dino serve`` or
    one of its children exits (e.g. ``mlflow ui`` losing its port to another process between
    ``free_port()`` and its bind), instead of after the whole deadline."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dino serve exited early:\n{log.read_text()[-3000:]}")
        if "exited with code" in (text := log.read_text()):
            children = "\n".join(
                f"--- {p.name}:\n{p.read_text()[-2000:]}"
                for p in sorted((log.parent / "home" / "logs").glob("*.log"))
            )
            raise AssertionError(f"a child of dino serve exited:\n{text[-3000:]}\n{children}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"dino serve did not answer /healthz:\n{log.read_text()[-3000:]}")


def _start_serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], Path, Path, str]:
    """``dino serve`` with one CPU, the test job function and ``extra`` arguments;
    (process, home, log, url)."""
    home = tmp_path / "home"
    port = free_port()
    env = dict(os.environ, DINO_HOME=str(home), DINO_STORAGE_URI=str(home / "jobs"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    for name in ("DINO_DATABASE_URL", "RAY_ADDRESS", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    env["DINO_ORCH_HEARTBEAT_S"] = "0.5"
    log = tmp_path / "serve.log"
    args = [*DINO, "serve", "--port", str(port), "--num-cpus", "1"]
    args += ["--job-fn", "tests.orchestrator.jobfns:steps_job", "--log-level", "warning"]
    args += list(extra) or ["--no-mlflow-ui"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO
        )
    return proc, home, log, f"http://127.0.0.1:{port}"


def _left_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` still alive (zombies awaiting their reaper count as gone)."""
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_serve_runs_jobs_and_stops_its_children_on_sigterm(tmp_path: Path) -> None:
    proc, home, log, url = _start_serve(tmp_path)
    try:
        _wait_healthy(url, proc, log)
        db = open_database(f"sqlite:///{home / 'dino.db'}")
        token = issue_token(db, "sam")
        db.dispose()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            job = c.post("/v1/jobs", json={"config": tiny(), "tags": {"t.steps": "2"}}).json()
            deadline = time.monotonic() + 240
            while c.get(f"/v1/jobs/{job['id']}").json()["status"] != "SUCCEEDED":
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            cluster = c.get("/v1/cluster").json()
        assert cluster["view"] == "user" and cluster["orchestrators"] == []  # sam: no PIDs
        assert cluster["orchestrators_alive"] == 1 and cluster["resources_total"]["CPU"] == 1
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("orchestrator" in " ".join(p.cmdline()) for p in children)
        assert any("raylet" in " ".join(p.cmdline()) for p in children)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    text = log.read_text()
    assert f"{url}/docs" in text and "mlflow ui --backend-store-uri sqlite:///" in text
    assert "orchestrator (pid" in text and "stopped, code 0" in text
    alive = _left_running(children)
    assert alive == [], [p.cmdline() for p in alive]


def test_serve_exits_with_an_error_when_its_orchestrator_dies(tmp_path: Path) -> None:
    """An API whose jobs would never run must not keep answering: SIGKILL the orchestrator
    child -> ``dino serve`` stops, exits 1 naming the cause, and leaves no process behind
    (not even the local Ray the orchestrator had started)."""
    proc, _home, log, url = _start_serve(tmp_path)
    try:
        _wait_healthy(url, proc, log)
        deadline = time.monotonic() + 120
        while True:  # the orchestrator is up once its local Ray is
            children = psutil.Process(proc.pid).children(recursive=True)
            if any("raylet" in " ".join(p.cmdline()) for p in children):
                break
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(2.0)  # the watcher has seen the whole tree
        orch = next(p for p in children if "orchestrator" in " ".join(p.cmdline()))
        orch.kill()
        assert proc.wait(timeout=120) == 1, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    text = log.read_text()
    assert "the orchestrator" in text and "exited with code -9" in text, text[-3000:]
    assert "stopped because the orchestrator exited" in text, text[-3000:]
    psutil.wait_procs([p for p in children if p.is_running()], timeout=10)
    alive = _left_running(children)
    assert alive == [], [p.cmdline() for p in alive]


RAY_PARTS = ("raylet", "gcs_server", "dashboard/agent.py", "runtime_env/agent/main.py")


def _tree_with_ray(proc: subprocess.Popen[str], log: Path) -> list[psutil.Process]:
    """``dino serve``'s process tree once its orchestrator's local Ray is fully up."""
    deadline = time.monotonic() + 300
    while True:
        tree = psutil.Process(proc.pid).children(recursive=True)
        lines = [" ".join(p.cmdline()) for p in tree if p.is_running()]
        if all(any(part in line for line in lines) for part in RAY_PARTS):
            return tree
        assert time.monotonic() < deadline, (lines, log.read_text()[-3000:])
        time.sleep(0.5)


def _second_orchestrator(home: Path) -> str:
    """``python -m orchestrator`` with its own local Ray on ``home``: must refuse, and fast."""
    env = dict(os.environ, DINO_HOME=str(home), PYTHONPATH=str(REPO))
    env.pop("RAY_ADDRESS", None)
    second = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "--num-cpus", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        out, _ = second.communicate(timeout=300)  # imports take minutes on a loaded host
    except subprocess.TimeoutExpired:  # it runs: stop it as dino serve would (its Ray too)
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=90)
        raise AssertionError(f"a second orchestrator started on {home}:\n{out[-3000:]}") from None
    assert second.returncode == 1, out
    assert "Traceback" not in out and "raylet" not in out, out  # refused before any Ray
    return out


def test_sigkill_of_serve_stops_its_orchestrator_and_ray_and_one_home_has_one(
    tmp_path: Path,
) -> None:
    """``kill -9`` of the ``dino serve`` PID alone: its orchestrator sees the parent die and
    stops with every process of its local Ray (raylet, gcs, DashboardAgent,
    RuntimeEnvAgent), and the ``mlflow ui`` it started stops with its web server and that
    server's workers. While it ran, a second orchestrator with its own local Ray on the same
    DINO_HOME refused to start, naming the first one's PID."""
    ui_port = free_port()
    proc, home, log, url = _start_serve(tmp_path, "--mlflow-ui", "--mlflow-port", str(ui_port))
    tree: list[psutil.Process] = []
    try:
        _wait_healthy(url, proc, log)
        _wait_healthy(f"http://127.0.0.1:{ui_port}", proc, log, path="/health")
        tree = _tree_with_ray(proc, log)
        ui = [p for p in tree if "mlflow/server" in " ".join(p.cmdline())]
        assert ui, [p.cmdline() for p in tree]  # the UI's own web server, not its launcher
        orch = next(p for p in tree if "-m orchestrator" in " ".join(p.cmdline()))
        out = _second_orchestrator(home)
        assert f"another orchestrator (pid {orch.pid})" in out, out
        proc.kill()  # SIGKILL: dino serve runs none of its clean-up
        proc.wait(30)
        deadline = time.monotonic() + 120
        while (alive := _left_running(tree)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert alive == [], [p.cmdline() for p in alive]
    finally:  # whatever this test started and the code under test left running
        if proc.poll() is None:
            tree += psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
            proc.wait(30)
        for p in _left_running(tree):
            with contextlib.suppress(psutil.Error):
                p.kill()
    text = (home / "logs" / "orchestrator.log").read_text()  # the watch or the kernel's SIGTERM
    assert f"parent process {proc.pid} is gone" in text or "signal 15" in text, text[-3000:]
