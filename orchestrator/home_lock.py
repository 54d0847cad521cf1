"""One orchestrator with its own local Ray per ``DINO_HOME``.

Two of them would each start a local Ray of ``--num-cpus`` on one host and run twice the
jobs the host was sized for. The first takes an exclusive ``fcntl.flock`` on
``<DINO_HOME>/orchestrator.lock`` (writing its PID there) and holds it for its lifetime; the
kernel drops it when the process dies, however it dies. A second one refuses to start,
naming the first one's PID. Orchestrators that join a Ray cluster (``RAY_ADDRESS``) take no
lock: they share the cluster's resources through Ray.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = "orchestrator.lock"


class LocalRayLockedError(RuntimeError):
    """Another live orchestrator runs its own local Ray on this ``DINO_HOME``."""


class HomeLock:
    """The held lock; :meth:`release` (or process exit) frees it."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.truncate(0)
            self._handle.close()  # closing the only descriptor drops the flock
            self._handle = None


def lock_local_ray(home: Path) -> HomeLock:
    """Take ``home``'s lock, or raise :class:`LocalRayLockedError` naming the holder."""
    path = home / LOCK_NAME
    home.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")  # not truncated: the holder's PID stays readable
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise LocalRayLockedError(
            f"another orchestrator (pid {holder}) is running its own local Ray on "
            f"DINO_HOME={home} (lock {path}): stop it first (or its `dino serve`), use another "
            "DINO_HOME, or join a shared Ray cluster with RAY_ADDRESS"
        ) from None
    handle.seek(0)
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return HomeLock(path, handle)
