"""Numbers for dashboards and Prometheus: queue, states, scheduling latency, cluster view."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased

from orchestrator.db import Database
from orchestrator.models import Attempt, Job, Orchestrator, utcnow
from orchestrator.schemas import ClusterInfo, LatencyStats, OrchestratorView, QueueStats
from orchestrator.settings import DEFAULT_LEASE_S
from worker.contracts import QUEUED, STATES, SUCCEEDED

LATENCY_WINDOW = 10_000  # most recent attempts the latency figures cover
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def _quantile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (``q`` in 0..1) of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), math.ceil(q * len(sorted_values))))
    return sorted_values[rank - 1]


def latency_stats(values: list[float]) -> LatencyStats:
    ordered = sorted(values)
    buckets = {f"{b:g}": sum(1 for v in ordered if v <= b) for b in LATENCY_BUCKETS_S}
    buckets["+Inf"] = len(ordered)
    return LatencyStats(
        count=len(ordered),
        sum_s=float(sum(ordered)),
        p50_s=_quantile(ordered, 0.5),
        p95_s=_quantile(ordered, 0.95),
        buckets=buckets,
    )


def queue_stats(db: Database, owner_id: str | None = None) -> QueueStats:
    """Queue length (ready now), jobs blocked on dependencies or back-off, jobs by state, and
    the latency from QUEUED to claimed over the last :data:`LATENCY_WINDOW` attempts; of
    every job, or of ``owner_id``'s only."""
    now = utcnow()
    dep = aliased(Job)
    mine = [Job.owner_id == owner_id] if owner_id is not None else []
    with db.session() as s:
        by_state: dict[str, int] = dict.fromkeys(STATES, 0)
        counts = select(Job.status, func.count()).where(*mine).group_by(Job.status)
        for status, n in s.execute(counts):
            by_state[status] = int(n)
        queued = (
            select(func.count())
            .select_from(Job)
            .outerjoin(dep, Job.depends_on == dep.id)
            .where(Job.status == QUEUED, *mine)
        )
        waiting = s.scalar(queued.where(Job.depends_on.is_not(None), dep.status != SUCCEEDED))
        backing = s.scalar(queued.where(Job.not_before.is_not(None), Job.not_before > now))
        ready = s.scalar(
            queued.where(
                or_(Job.depends_on.is_(None), dep.status == SUCCEEDED),
                or_(Job.not_before.is_(None), Job.not_before <= now),
            )
        )
        attempts = select(Attempt.queued_at, Attempt.claimed_at)
        if owner_id is not None:
            attempts = attempts.join(Job, Attempt.job_id == Job.id).where(*mine)
        pairs = s.execute(attempts.order_by(Attempt.id.desc()).limit(LATENCY_WINDOW)).all()
    latencies = [max((c - q).total_seconds(), 0.0) for q, c in pairs]
    return QueueStats(
        queue_length=int(ready or 0),
        waiting_dependencies=int(waiting or 0),
        backing_off=int(backing or 0),
        jobs_by_state=by_state,
        scheduling_latency=latency_stats(latencies),
    )


def cluster_info(db: Database) -> ClusterInfo:
    """Live orchestrators and the Ray cluster from the freshest heartbeat (no Ray call here:
    the api need not connect to Ray)."""
    now = utcnow()
    with db.session() as s:
        rows = list(
            s.scalars(
                select(Orchestrator)
                .where(Orchestrator.stopped_at.is_(None))
                .order_by(Orchestrator.heartbeat_at.desc())
            )
        )
    views = []
    for row in rows:
        lease = float(row.cluster.get("lease_s", DEFAULT_LEASE_S))
        alive = row.heartbeat_at >= now - timedelta(seconds=lease)
        data: dict[str, Any] = {c.key: getattr(row, c.key) for c in Orchestrator.__table__.columns}
        views.append(OrchestratorView.model_validate({**data, "alive": alive}))
    live = [r for r, v in zip(rows, views, strict=True) if v.alive]
    snap = live[0].cluster if live else {}
    return ClusterInfo(
        orchestrators=[v for v in views if v.alive],
        resources_total=snap.get("total", {}),
        resources_available=snap.get("available", {}),
        nodes=snap.get("nodes", []),
        reported_at=live[0].heartbeat_at if live else None,
        fixed_size=bool(snap.get("fixed_size", False)),
    )
