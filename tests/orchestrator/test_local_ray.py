"""An orchestrator's own local Ray is stopped whole, even when a SIGTERM interrupts
``ray.init`` (as when ``dino serve`` is killed while its orchestrator starts): Ray's handler
exits from inside ``ray.init``, before the node is registered where walking its process tree
could find it. The raylet's DashboardAgent and RuntimeEnvAgent were left orphaned (PPID 1,
~210 MB) for about 2.5 minutes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from orchestrator.marked_processes import has_mark
from tests.orchestrator.raynodes import REPO


def _ray_started(proc: subprocess.Popen[bytes]) -> bool:
    """Whether a raylet runs under ``proc``."""
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return False
    return any("raylet" in " ".join(p.cmdline()) for p in tree if p.is_running())


def test_sigterm_during_ray_init_leaves_no_process_of_the_local_ray(tmp_path: Path) -> None:
    home = tmp_path / "home"  # every process the orchestrator starts inherits DINO_HOME
    env = {
        **os.environ,
        "DINO_HOME": str(home),
        "DINO_ORCH_MLFLOW_SETUP": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    args = [sys.executable, "-m", "orchestrator", "--num-cpus", "1"]
    log = tmp_path / "orchestrator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not _ray_started(proc):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no raylet after 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)  # ray.init is still starting the node's processes
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    text = log.read_text()
    assert "starting a local Ray" in text and "scheduling jobs" not in text, text[-3000:]
    left = [p for p in psutil.process_iter() if has_mark(p, "DINO_HOME", str(home))]
    for p in left:  # no stray processes for the rest of the session, whatever the outcome
        p.kill()
    assert left == [], [" ".join(p.cmdline())[:120] for p in left]
