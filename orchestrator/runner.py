"""The Ray actor that runs attempts of jobs: named ``dino-job-<id>-a<attempt>`` after its first.

The actor is detached (it outlives an orchestrator crash, which re-attaches by the name stored
on the attempt) and never restarted by Ray (``max_restarts=0``: a dead actor is a failed
attempt, retried from the checkpoint). It calls the job function in a thread and keeps progress
events until the orchestrator has polled them; ``poll`` is a long poll that returns early on
anything but a routine progress event, so the database hears of checkpoints, collapse and the
end at once.

After an attempt that ended with a result, the scheduler may hand the same actor the next job of
the same resource shape (:meth:`JobRunner.start`): its process has imported torch, timm and
MLflow already, so the job starts in milliseconds instead of the seconds a new Ray worker
process takes (issue #18). An actor that is neither running nor polled for ``idle_exit_s``
after its last result was collected ends its own process, so the warm actors of an
orchestrator that died do not hold resources for ever.
"""

from __future__ import annotations

import gc
import importlib
import os
import threading
import time
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


def _identity(spec_json: str) -> tuple[str | None, int | None]:
    """(job id, attempt) of a spec; (None, None) for one that does not validate (the job
    thread then reports the validation error as the attempt's failure)."""
    try:
        spec = JobSpec.model_validate_json(spec_json)
    except ValueError:
        return None, None
    return spec.job_id, spec.attempt


class RunnerBusyError(RuntimeError):
    """``start`` on an actor whose attempt has not ended or whose result was not collected."""


class JobRunner:
    """Runs ``job_fn(spec, on_progress, should_cancel)`` in a thread; polled by the loop.

    ``spec_json`` starts the first attempt at once; ``idle_exit_s`` > 0 makes the process end
    itself after that long without an attempt or a call once the last result was collected
    (0: never; the scheduler kills it).
    """

    def __init__(self, spec_json: str, job_fn: str, idle_exit_s: float = 0.0) -> None:
        self._cond = threading.Condition()
        self._node_id = _node_id()
        self._idle_exit_s = float(idle_exit_s)
        self._last_call = time.monotonic()
        self._thread: threading.Thread | None = None
        self._begin(spec_json, job_fn)
        if self._idle_exit_s > 0:
            threading.Thread(target=self._watch_idle, name="dino-idle", daemon=True).start()

    def _begin(self, spec_json: str, job_fn: str) -> None:
        """Reset the per-attempt state and start the job thread (caller holds no lock)."""
        self._job = _identity(spec_json)
        self._events: list[WorkerEvent] = []
        self._base = 0  # absolute index of self._events[0]
        self._last_urgent = -1  # absolute index of the newest non-progress event
        self._done = False
        self._collected = False  # a poll has returned the outcome
        self._result: JobResult | None = None
        self._error: str | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(spec_json, job_fn), name="dino-job", daemon=True
        )
        self._thread.start()

    def start(self, spec_json: str, job_fn: str) -> int:
        """Run the next attempt in this process; the previous one must have ended with its
        outcome collected. Returns the process id."""
        with self._cond:
            if not (self._done and self._collected):
                job_id, attempt = self._job
                raise RunnerBusyError(
                    f"this actor still runs job {job_id} attempt {attempt} (or its outcome "
                    "was not collected)"
                )
            self._last_call = time.monotonic()
        gc.collect()  # the previous attempt's model and data, before the next one allocates
        self._begin(spec_json, job_fn)
        return os.getpid()

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
            self._last_call = time.monotonic()
            start = self._base if cursor is None else max(cursor, self._base)
            del self._events[: start - self._base]
            self._base = start
            self._cond.wait_for(lambda: self._done or self._last_urgent >= start, wait_s)
            if self._done:
                self._collected = True
            self._last_call = time.monotonic()
            return PollReply(
                events=list(self._events),
                cursor=self._base + len(self._events),
                done=self._done,
                result=self._result,
                error=self._error,
                pid=os.getpid(),
                node_id=self._node_id,
                job_id=self._job[0],
                attempt=self._job[1],
            )

    def cancel(self) -> None:
        """Ask the job to stop (its ``should_cancel`` turns True)."""
        self._cancel.set()

    def _watch_idle(self) -> None:
        """End the process once idle for ``idle_exit_s`` after its last outcome was collected
        (the scheduler that would hand it a job, or kill it, is gone)."""
        while True:
            time.sleep(min(self._idle_exit_s, 5.0))
            with self._cond:
                idle = self._done and self._collected
                quiet = time.monotonic() - self._last_call
            if idle and quiet >= self._idle_exit_s:
                os._exit(0)
