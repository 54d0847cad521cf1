"""``run_orchestrator``: the scheduling loop of one process, until ``stop_event`` is set."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from orchestrator.db import Database, open_database
from orchestrator.ray_cluster import connect, reserve_local_ray
from orchestrator.scheduler import Scheduler
from orchestrator.settings import OrchestratorSettings
from worker.env import apply_worker_env
from worker.mlflow_store import prepare_tracking_store

log = logging.getLogger(__name__)


def _stop_on_signals(stop_event: threading.Event) -> None:
    """SIGTERM/SIGINT set ``stop_event`` (installed after ``ray.init``, which sets its own)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after this pass", signum)
        stop_event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_orchestrator(
    stop_event: threading.Event,
    settings: OrchestratorSettings | None = None,
    *,
    handle_signals: bool = False,
) -> None:
    """Open (and migrate) the database, connect to Ray, then schedule until stopped.

    With ``RAY_ADDRESS``/``settings.ray_address`` the jobs' detached actors keep running after
    this returns, and the next orchestrator re-attaches to them. With a local Ray started
    here (one per ``DINO_HOME``: :mod:`orchestrator.home_lock`), running jobs are requeued
    (without counting a failure) and Ray is shut down with every process it spawned.
    ``handle_signals`` (main thread only): SIGTERM/SIGINT set ``stop_event``.
    """
    apply_worker_env()  # before MLflow is imported or a local Ray starts
    cfg = settings or OrchestratorSettings.from_env()
    local_ray = reserve_local_ray(cfg)  # first: a second one on this DINO_HOME stops here
    db: Database | None = None
    scheduler: Scheduler | None = None
    try:
        db = open_database(cfg.database_url)
        if cfg.mlflow_setup:  # before any job: a fresh sqlite store is migrated once, here
            prepare_tracking_store(cfg.resolved_tracking_uri())
        connect(cfg, local_ray)
        if handle_signals:
            _stop_on_signals(stop_event)
        scheduler = Scheduler(db, cfg)
        log.info("orchestrator %s scheduling jobs from %s", scheduler.id, db.display_url())
        scheduler.start()
        while not stop_event.is_set():
            scheduler.tick()
    finally:
        try:
            if scheduler is not None:
                scheduler.stop(owns_ray=local_ray is not None)
        finally:
            if local_ray is not None:  # also when ray.init was interrupted (SIGTERM)
                local_ray.shutdown()
            if db is not None:
                db.dispose()
        log.info("orchestrator %s stopped", scheduler.id if scheduler else "(not started)")
