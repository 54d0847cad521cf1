"""Die with the parent: an orchestrator started by ``dino serve`` must not outlive it.

A ``kill -9`` of ``dino serve`` runs none of its clean-up, so the child watches for itself.
On Linux the kernel sends SIGTERM when the parent exits (``prctl(PR_SET_PDEATHSIG)``, set
here through ctypes; it is lost if the parent died before the call, hence the check that
follows it); everywhere a daemon thread also polls the parent's PID once per
``period_s`` (a reparented child sees another parent PID). Either way ``on_death`` runs —
the orchestrator's graceful stop, which shuts its local Ray down with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def parent_death_signal(signum: int) -> bool:
    """Ask the Linux kernel to send ``signum`` to this process when its parent exits."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        return False
    return True


def parent_alive(parent_pid: int) -> bool:
    """Whether ``parent_pid`` is still this process's parent."""
    return os.getppid() == parent_pid and psutil.pid_exists(parent_pid)


def die_with_parent(
    parent_pid: int, on_death: Callable[[], None], period_s: float = 0.5
) -> threading.Thread:
    """Run ``on_death`` (once) when ``parent_pid`` exits; SIGTERM also comes on Linux."""
    parent_death_signal(signal.SIGTERM)

    def watch() -> None:
        while parent_alive(parent_pid):
            time.sleep(period_s)
        log.warning("parent process %d is gone: stopping", parent_pid)
        on_death()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
