"""``run_orchestrator``: the scheduling loop of one process, until ``stop_event`` is set."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import ray

from orchestrator.db import open_database
from orchestrator.ray_cluster import connect
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
    here, running jobs are requeued (without counting a failure) and Ray is shut down.
    ``handle_signals`` (main thread only): SIGTERM/SIGINT set ``stop_event``.
    """
    apply_worker_env()  # before MLflow is imported or a local Ray starts
    cfg = settings or OrchestratorSettings.from_env()
    db = open_database(cfg.database_url)
    if cfg.mlflow_setup:  # before any job: a fresh sqlite store is migrated once, here
        prepare_tracking_store(cfg.resolved_tracking_uri())
    owns_ray = connect(cfg)
    if handle_signals:
        _stop_on_signals(stop_event)
    scheduler = Scheduler(db, cfg)
    log.info("orchestrator %s scheduling jobs from %s", scheduler.id, db.display_url())
    try:
        scheduler.start()
        while not stop_event.is_set():
            scheduler.tick()
    finally:
        scheduler.stop(owns_ray=owns_ray)
        if owns_ray:
            ray.shutdown()
        db.dispose()
        log.info("orchestrator %s stopped", scheduler.id)
