"""Kept job actors: a warm process per resource shape for the next job (issue #18).

Starting an attempt in a new Ray actor costs a worker process and the imports of torch, timm
(which pulls torchvision and torch._dynamo) and MLflow: 8-9 s per job on a 2-core host, against
milliseconds for a call on a process that has them. The scheduler keeps the actor of an attempt
that ended well (SUCCEEDED, or PAUSED at an early-stopping rung) for ``warm_actor_idle_s`` and
hands it the next ready job whose resources are the same bundle; it kills kept actors when they
expire, when a job of another shape needs what they hold, and when it stops. Only
single-process attempts are kept: a multi-worker attempt's actor drives a Ray Train group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.capacity import Bundle
from worker.contracts import PAUSED, SUCCEEDED, JobResult, Resources


@dataclass
class WarmActor:
    """An actor whose last attempt ended well, waiting for the next job of its shape."""

    actor: Any
    name: str
    node_id: str | None
    demand: Bundle
    until: float  # monotonic time after which it is killed
    job_id: str  # the attempt it ran last: released (in the database) once this actor is
    attempt: int  # killed or runs another attempt, so a successor kills what a dead one kept


def reusable(res: Resources) -> bool:
    """Jobs whose attempt runs inside the actor itself (one process, its resources)."""
    return res.num_workers == 1


def ends_well(result: JobResult | None) -> bool:
    """An outcome after which the process is known to be in a clean state."""
    return result is not None and result.status in (SUCCEEDED, PAUSED)


def same_shape(a: Bundle, b: Bundle) -> bool:
    keys = set(a) | set(b)
    return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) < 1e-9 for k in keys)


class WarmPool:
    """The kept actors of one scheduler, oldest first."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = float(idle_s)
        self.actors: list[WarmActor] = []
        self.kept = 0  # how many were ever kept (tells the loop a slot was handed back)

    @property
    def enabled(self) -> bool:
        return self.idle_s > 0

    def keep(self, warm: WarmActor) -> None:
        self.actors.append(warm)
        self.kept += 1

    def match(self, demand: Bundle) -> WarmActor | None:
        """The kept actor that has waited longest among those of this shape."""
        return next((w for w in self.actors if same_shape(w.demand, demand)), None)

    def take(self, warm: WarmActor) -> None:
        self.actors.remove(warm)

    def expired(self, now: float) -> list[WarmActor]:
        """Remove and return the actors kept past their time."""
        gone = [w for w in self.actors if w.until <= now]
        self.actors = [w for w in self.actors if w.until > now]
        return gone

    def drain(self) -> list[WarmActor]:
        """Remove and return every kept actor."""
        gone, self.actors = self.actors, []
        return gone
