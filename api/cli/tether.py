"""Run a command tied to a parent PID: ``python -m api.cli.tether --parent-pid P -- CMD ...``.

``dino serve`` starts ``mlflow ui`` through this. A ``kill -9`` of ``dino serve`` runs none of
its clean-up, and ``mlflow ui`` is a launcher whose web server is a process of its own, so a
parent-death signal on the launcher alone would leave the server running (seen: an orphaned
``mlflow ui`` after ``kill -9`` of ``dino serve``). The tether watches the parent
(:func:`orchestrator.lifeline.die_with_parent`: the kernel's SIGTERM, and a PID watch) and,
when it dies or when the tether itself is asked to stop, stops the command's whole process
tree by PID: SIGTERM, ``GRACE_S`` seconds, then SIGKILL. It exits with the command's code.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import psutil

from orchestrator.lifeline import die_with_parent

GRACE_S = 10.0


def tether_command(parent_pid: int, command: Sequence[str]) -> list[str]:
    """The argv that runs ``command`` tethered to ``parent_pid``."""
    return [sys.executable, "-m", "api.cli.tether", "--parent-pid", str(parent_pid), "--", *command]


def stop_tree(root_pid: int, grace_s: float = GRACE_S) -> None:
    """SIGTERM ``root_pid`` and every descendant, SIGKILL those alive after ``grace_s``."""
    try:
        root = psutil.Process(root_pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for p in tree:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=grace_s)


def run(parent_pid: int, command: Sequence[str]) -> int:
    """Run ``command`` until it exits, or until the parent dies or SIGTERM/SIGINT comes."""
    proc = subprocess.Popen(list(command))
    stopping, stopped = threading.Event(), threading.Event()

    def stop(*_: object) -> None:
        if not stopping.is_set():
            stopping.set()
            try:
                stop_tree(proc.pid)
            finally:
                stopped.set()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=stop, name="tether-stop", daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    die_with_parent(parent_pid, stop)
    code = proc.wait()
    if stopping.is_set():
        # the command can die at SIGTERM before its children do: the tether must not exit (and
        # end the stopping thread) before the SIGKILL stage has dealt with the rest of the tree
        stopped.wait()
    return code if code >= 0 else 128 - code


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.cli.tether", description=__doc__)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS ...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command: give it after --")
    raise SystemExit(run(args.parent_pid, command))


if __name__ == "__main__":
    main()
