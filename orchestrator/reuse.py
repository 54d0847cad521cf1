"""No run paid for twice: a job whose identity matches a SUCCEEDED job of the same owner
takes that job's results instead of running.

A job's identity (:func:`reuse_key`) is the hash of its kind, its resolved config
(``config_hash``), its options, its tags (they label its MLflow run: other tags, another
record), what it scores (an eval job: the identity of its pretraining run, or the checkpoint
it was given) and the code version (:func:`worker.code_version.code_version`).
A reusing job is stored SUCCEEDED at once, with the source's checkpoint, metrics and MLflow
run, ``reused_from`` naming the job that really ran, and a ``reused`` event. ``reuse: false``
in a request opts out. Only the owner's own jobs are reused: a checkpoint is scored only by
its owner (deploy/README, Ownership).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.models import Job
from worker.code_version import code_version
from worker.contracts import SUCCEEDED

REUSED_COLUMNS = (
    "checkpoint_uri",
    "result_metrics",
    "metrics",
    "mlflow_run_id",
    "step",
    "epoch",
    "total_steps",
    "collapsed",
    "collapse_kind",
)


def reuse_key(
    kind: str, config_hash: str, options: dict[str, Any], tags: dict[str, str], source: str = ""
) -> str:
    """The identity of a run: same key, same result (32 hex of a sha256)."""
    canon = json.dumps(
        [kind, config_hash, options, tags, source, code_version()],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canon.encode()).hexdigest()[:32]


def find_reusable(session: Session, owner_id: str, key: str) -> Job | None:
    """The owner's first SUCCEEDED job with identity ``key`` that ran itself, if any."""
    stmt = (
        select(Job)
        .where(
            Job.reuse_key == key,
            Job.owner_id == owner_id,
            Job.status == SUCCEEDED,
            Job.reused_from.is_(None),
        )
        .order_by(Job.finished_at, Job.id)
        .limit(1)
    )
    return session.scalars(stmt).first()


def reused_values(source: Job) -> dict[str, Any]:
    """The columns a job reusing ``source`` is stored with (besides its status)."""
    values = {c: getattr(source, c) for c in REUSED_COLUMNS}
    values.update(
        reused_from=source.id,
        status_reason=f"reuses SUCCEEDED job {source.id} (same config, options and code "
        "version): nothing runs",
    )
    return values
