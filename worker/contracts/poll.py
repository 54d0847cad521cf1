"""The reply of the job actor's long poll (``orchestrator/runner.py``) to the scheduler."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from worker.contracts.events import WorkerEvent
from worker.contracts.spec import JobResult


class PollReply(BaseModel):
    """Events from the poll's cursor on, the new cursor and, once ``done``, the outcome:
    ``result`` when the job function returned, else ``error`` (the traceback it raised).
    ``job_id``/``attempt`` name the attempt the actor runs (an actor is reused across jobs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[WorkerEvent] = Field(default_factory=list)
    cursor: int = Field(ge=0)
    done: bool
    result: JobResult | None = None
    error: str | None = None
    pid: int
    node_id: str | None = None
    job_id: str | None = None
    attempt: int | None = None
