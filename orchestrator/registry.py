"""Orchestrator processes in the database: registration, heartbeat, and who is dead.

A heartbeat is the lease on the jobs an orchestrator claimed. Jobs of a dead orchestrator
(stopped, heartbeat older than the lease, or - on this host - its PID gone) are adopted by a
live one, which re-attaches to their Ray actors or requeues them.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

import psutil
from sqlalchemy import select, update

from orchestrator.db import Database
from orchestrator.models import Orchestrator, new_id, utcnow


def new_orchestrator_id() -> str:
    return new_id(f"orch-{socket.gethostname()[:20]}-{os.getpid()}")


def register(db: Database, orchestrator_id: str, ray_address: str, cluster: dict[str, Any]) -> None:
    now = utcnow()
    with db.session() as s:
        s.add(
            Orchestrator(
                id=orchestrator_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=now,
                heartbeat_at=now,
                ray_address=ray_address,
                cluster=cluster,
            )
        )


def heartbeat(db: Database, orchestrator_id: str, cluster: dict[str, Any] | None) -> None:
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if cluster is not None:
        values["cluster"] = cluster
    with db.session() as s:
        s.execute(update(Orchestrator).where(Orchestrator.id == orchestrator_id).values(**values))


def mark_stopped(db: Database, orchestrator_id: str) -> None:
    with db.session() as s:
        s.execute(
            update(Orchestrator)
            .where(Orchestrator.id == orchestrator_id)
            .values(stopped_at=utcnow(), heartbeat_at=utcnow())
        )


def _process_gone(row: Orchestrator) -> bool:
    """On this host: is the orchestrator's process gone (or its PID reused)?"""
    if row.hostname != socket.gethostname():
        return False
    try:
        proc = psutil.Process(row.pid)
        return float(proc.create_time()) > row.started_at.timestamp() + 5.0
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def live_orchestrators(db: Database, lease_s: float) -> set[str]:
    """Ids of orchestrators that still hold their claims."""
    cutoff = utcnow() - timedelta(seconds=lease_s)
    with db.session() as s:
        rows = s.scalars(
            select(Orchestrator).where(
                Orchestrator.stopped_at.is_(None), Orchestrator.heartbeat_at >= cutoff
            )
        ).all()
    return {r.id for r in rows if not _process_gone(r)}
