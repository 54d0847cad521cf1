"""Processes found by a mark in their environment, and killed whole.

A process inherits its parent's environment, so a variable set before starting something is
carried by every process that thing starts, and by their children, even once they are
orphaned (re-parented to PID 1) and no longer found by walking a process tree. The kernel
shows a process's environment as it was at its ``exec`` (``/proc/<pid>/environ``): the process
that sets the mark in ``os.environ`` does not carry it itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import psutil

KILL_PASSES = 5  # scans until none is left: a process may start while one scan runs


@contextlib.contextmanager
def marking(name: str, value: str) -> Iterator[None]:
    """``name=value`` in this process's environment in the block (restored after it), so
    that the processes started in it carry the mark."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def has_mark(process: psutil.Process, name: str, value: str | None = None) -> bool:
    """Whether ``process`` was started with ``name`` (equal to ``value``, if given) in its
    environment; False for a process that is gone or not ours to read."""
    try:
        found = process.environ().get(name)
    except (psutil.Error, OSError):
        return False
    return found is not None and (value is None or found == value)


def kill_marked(name: str, value: str, timeout_s: float = 10.0) -> int:
    """SIGKILL every process carrying ``name=value`` and its descendants, then reap them,
    scanning again until none is left; how many were killed. SIGKILL because Ray's gcs and
    raylet ignore SIGTERM."""
    total = 0
    for _ in range(KILL_PASSES):
        found = _kill_once(name, value, timeout_s)
        if not found:
            break
        total += found
    return total


def _kill_once(name: str, value: str, timeout_s: float) -> int:
    me = os.getpid()
    procs: dict[int, psutil.Process] = {}
    for root in psutil.process_iter():
        if root.pid == me or not has_mark(root, name, value):
            continue
        procs[root.pid] = root
        with contextlib.suppress(psutil.Error):
            procs.update({p.pid: p for p in root.children(recursive=True) if p.pid != me})
    for p in procs.values():
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(list(procs.values()), timeout=timeout_s)
    return len(procs)
