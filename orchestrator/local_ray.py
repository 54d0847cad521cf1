"""The local Ray an orchestrator starts itself: one per ``DINO_HOME``, stopped whole.

``ray.shutdown()`` stops the node's own processes (gcs, raylet, log monitor ...), but the
raylet's children (DashboardAgent, RuntimeEnvAgent, idle workers) were seen outliving a killed
orchestrator by about 3 minutes, and a SIGTERM while ``ray.init`` still ran (Ray's handler
exits from inside it) left the agents orphaned for about 2.5 minutes, where walking the node's
process tree finds nothing. So every process of this Ray is started with a mark of its own in
the environment (:mod:`orchestrator.marked_processes`) and, after ``ray.shutdown()``, every
process still carrying it is killed. The ``DINO_HOME`` lock (:mod:`orchestrator.home_lock`) is
held while this Ray runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import ray

from orchestrator.home_lock import HomeLock
from orchestrator.marked_processes import kill_marked, marking

MARK_ENV = "DINO_LOCAL_RAY"


@dataclass
class LocalRay:
    """The local Ray this orchestrator started, with ``DINO_HOME``'s lock."""

    lock: HomeLock
    mark: str = field(default_factory=lambda: uuid.uuid4().hex)

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Wrap ``ray.init``: the processes it starts, and theirs, carry this Ray's mark.

        The mark is in this process's environment for the block, so a process another thread
        starts meanwhile carries it too and is killed with this Ray: keep the block to
        ``ray.init`` (``python -m orchestrator`` starts nothing else)."""
        with marking(MARK_ENV, self.mark):
            yield

    def shutdown(self) -> None:
        """``ray.shutdown()``, then kill what it leaves behind, then free the lock."""
        try:
            ray.shutdown()
            kill_marked(MARK_ENV, self.mark)
        finally:
            self.lock.release()
