"""``python -m api.cli.tether``: a command's whole process tree dies with the tether's parent,
even when that parent is SIGKILLed; otherwise the tether passes the command's exit code on."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from api.cli.tether import tether_command
from tests.orchestrator.raynodes import REPO

# a launcher that starts a server of its own and waits on it, as `mlflow ui` does
LAUNCHER = (
    "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(300)'])"
)
# the parent: starts the tethered launcher, prints the tether's PID, then waits to be killed
PARENT = """
import os, subprocess, sys, time
from api.cli.tether import tether_command
cmd = tether_command(os.getpid(), [sys.executable, "-c", {launcher!r}])
child = subprocess.Popen(cmd)
print(child.pid, flush=True)
time.sleep(300)
"""


def _tree(pid: int, size: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 60
    while True:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
        if len(tree) >= size:
            return tree
        assert time.monotonic() < deadline, [p.cmdline() for p in tree]
        time.sleep(0.2)


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_sigkilled_parent_takes_the_commands_whole_tree_with_it() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(launcher=LAUNCHER)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    tree: list[psutil.Process] = []
    try:
        assert parent.stdout is not None
        tether_pid = int(parent.stdout.readline())
        tree = _tree(tether_pid, 3)  # the tether, the launcher, the launcher's server
        parent.kill()
        parent.wait(30)
        deadline = time.monotonic() + 30
        while (alive := _alive(tree)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        if parent.poll() is None:
            parent.kill()
        for p in _alive(tree):
            p.kill()


def test_the_tether_exits_with_the_commands_code() -> None:
    cmd = tether_command(psutil.Process().pid, [sys.executable, "-c", "raise SystemExit(3)"])
    assert subprocess.run(cmd, cwd=REPO, timeout=60).returncode == 3


def test_a_tether_without_a_command_says_so() -> None:
    cmd = tether_command(psutil.Process().pid, [])
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no command: give it after --" in out.stderr
