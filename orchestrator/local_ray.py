"""The local Ray an orchestrator starts itself: one per ``DINO_HOME``, stopped whole.

``ray.shutdown()`` stops the node's own processes (gcs, raylet, log monitor ...), but the
raylet's children (DashboardAgent, RuntimeEnvAgent, idle workers) were seen outliving a killed
orchestrator by about 3 minutes; they are collected before the shutdown and killed after it.
The ``DINO_HOME`` lock (:mod:`orchestrator.home_lock`) is held while this Ray runs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psutil
import ray

from orchestrator.home_lock import HomeLock


def _node_processes() -> list[psutil.Process]:
    """Every process of the local Ray this driver started, and their descendants.

    The roots are the node's own processes; the raylet's children are found through it.
    Taken before ``ray.shutdown()``: once the raylet is gone its orphans are no longer ours
    to find.
    """
    node = getattr(ray._private.worker, "_global_node", None)  # private: the node ray.init made
    roots: list[psutil.Process] = []
    for infos in (getattr(node, "all_processes", None) or {}).values():
        for info in infos:
            with contextlib.suppress(psutil.Error, AttributeError):
                roots.append(psutil.Process(info.process.pid))
    found: dict[int, psutil.Process] = {}
    for root in roots:
        found[root.pid] = root
        with contextlib.suppress(psutil.Error):
            found.update({p.pid: p for p in root.children(recursive=True)})
    return list(found.values())


def kill_processes(processes: list[psutil.Process], timeout_s: float = 10.0) -> None:
    """SIGKILL those still running (raylet and gcs ignore SIGTERM), then reap them."""
    for p in processes:
        with contextlib.suppress(psutil.Error):
            if p.is_running():
                p.kill()
    psutil.wait_procs(processes, timeout=timeout_s)


@dataclass
class LocalRay:
    """The local Ray this orchestrator started, with ``DINO_HOME``'s lock."""

    lock: HomeLock

    def shutdown(self) -> None:
        """``ray.shutdown()``, then kill what it leaves behind, then free the lock."""
        try:
            left = _node_processes()
            ray.shutdown()
            kill_processes(left)
        finally:
            self.lock.release()
