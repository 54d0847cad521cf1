"""The Ray actor that runs one attempt of a job: ``dino-job-<id>-a<attempt>``.

The actor is detached (it outlives an orchestrator crash, which re-attaches by name) and never
restarted by Ray (``max_restarts=0``: a dead actor is a failed attempt, retried from the
checkpoint). It calls the job function in a thread and keeps progress events until the
orchestrator has polled them; ``poll`` is a long poll that returns early on anything but a
routine progress event, so the database hears of checkpoints, collapse and the end at once.
"""

from __future__ import annotations

import importlib
import os
import threading
import traceback
from collections.abc import Callable
from typing import Any, cast

from worker.contracts import JobResult, JobSpec, PollReply, Progress, WorkerEvent

JobFn = Callable[..., Any]
MAX_ERROR_CHARS = 8000


def actor_name(job_id: str, attempt: int) -> str:
    return f"dino-job-{job_id}-a{attempt}"


def load_job_fn(path: str) -> JobFn:
    """Import ``'package.module:function'``."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"job function {path!r} must look like 'package.module:function'")
    fn = getattr(importlib.import_module(module_name), attr, None)
    if not callable(fn):
        raise ValueError(f"job function {path!r}: {attr!r} is not a callable in {module_name}")
    return cast(JobFn, fn)


def _node_id() -> str | None:
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # not inside Ray (direct use in a test)
        return None


class JobRunner:
    """Runs ``job_fn(spec, on_progress, should_cancel)`` in a thread; polled by the loop."""

    def __init__(self, spec_json: str, job_fn: str) -> None:
        self._cond = threading.Condition()
        self._events: list[WorkerEvent] = []
        self._base = 0  # absolute index of self._events[0]
        self._last_urgent = -1  # absolute index of the newest non-progress event
        self._done = False
        self._result: JobResult | None = None
        self._error: str | None = None
        self._cancel = threading.Event()
        self._node_id = _node_id()
        self._thread = threading.Thread(
            target=self._run, args=(spec_json, job_fn), name="dino-job", daemon=True
        )
        self._thread.start()

    def _run(self, spec_json: str, job_fn: str) -> None:
        result: JobResult | None = None
        error: str | None = None
        try:
            spec = JobSpec.model_validate_json(spec_json)
            out = load_job_fn(job_fn)(spec, self._on_progress, self._cancel.is_set)
            result = JobResult.model_validate(out)
        except BaseException:  # the attempt failed: report it instead of dying silently
            error = traceback.format_exc()[-MAX_ERROR_CHARS:]
        with self._cond:
            self._result, self._error, self._done = result, error, True
            self._cond.notify_all()

    def _on_progress(self, event: WorkerEvent) -> None:
        with self._cond:
            self._events.append(event)
            if not isinstance(event, Progress):
                self._last_urgent = self._base + len(self._events) - 1
                self._cond.notify_all()

    def poll(self, cursor: int | None, wait_s: float) -> PollReply:
        """Events from ``cursor`` on (None = all still kept) and the outcome once done.

        Events before ``cursor`` are acknowledged and dropped. Waits up to ``wait_s`` for an
        urgent event or the end; plain progress events are returned when the wait ends.
        """
        with self._cond:
            start = self._base if cursor is None else max(cursor, self._base)
            del self._events[: start - self._base]
            self._base = start
            self._cond.wait_for(lambda: self._done or self._last_urgent >= start, wait_s)
            return PollReply(
                events=list(self._events),
                cursor=self._base + len(self._events),
                done=self._done,
                result=self._result,
                error=self._error,
                pid=os.getpid(),
                node_id=self._node_id,
            )

    def cancel(self) -> None:
        """Ask the job to stop (its ``should_cancel`` turns True)."""
        self._cancel.set()
