"""Buffered, retrying writer to one MLflow run, on a background thread.

Training never waits on MLflow: calls enqueue operations; a daemon thread opens the run
(:func:`worker.mlflow_run.open_run`) and applies them in order, metrics coalesced into
``log_batch`` calls, at most one round of writes every ``write_interval_s`` seconds (a
``flush``/``close`` writes at once). Each MLflow call costs tens to hundreds of milliseconds
of Python in the writer thread, which holds the GIL against the training loop, so fewer,
larger writes keep tracking cheap (benchmarks/tracking_overhead.py measures the steady
per-step cost; a hard kill loses at most the unwritten interval, which the resumed attempt
logs again from its checkpoint). A failure keeps the operations queued and is retried with
exponential back-off; the first failure and the recovery are reported through ``on_warning``.

Steps already in the run (an earlier attempt got further than its last checkpoint) are not
logged again: on open the session reads each metric's last step and the images present, and
drops anything at or before them, so a resumed run has no duplicate step.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from worker.mlflow_run import RunTarget, open_run

log = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
# queued metric ops merged into one apply (sent as log_batch calls of the size above)
MAX_METRICS_PER_APPLY = 10 * MAX_METRICS_PER_BATCH
MAX_PARAMS_PER_BATCH = 100
MAX_BUFFERED_METRICS = 500_000
_IMAGE_NAME = re.compile(r"^(?P<key>.+)\+step\+(?P<step>\d+)\+timestamp\+")


@dataclass
class _Metrics:
    metrics: list[Metric]


@dataclass
class _Params:
    params: dict[str, str]


@dataclass
class _Tags:
    tags: dict[str, str]


@dataclass
class _Image:
    key: str
    step: int
    image: np.ndarray


@dataclass
class _Artifact:
    local_path: str
    artifact_path: str | None


@dataclass
class _Text:
    text: str
    artifact_file: str


@dataclass
class _Terminate:
    status: str


_Op = _Metrics | _Params | _Tags | _Image | _Artifact | _Text | _Terminate


class TrackingSession:
    """All writes of one attempt to its job's MLflow run."""

    def __init__(
        self,
        target: RunTarget,
        on_warning: Callable[[str], None] | None = None,
        on_open: Callable[[str], None] | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        write_interval_s: float = 5.0,
    ) -> None:
        self.target = target
        self._on_warning = on_warning
        self._on_open = on_open
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._interval = max(0.0, write_interval_s)
        self._last_write = float("-inf")
        self._flushing = 0  # flush() calls waiting: write now, not at the next interval
        self._ops: deque[_Op] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._stopped = False
        self._wake = threading.Event()
        self._run_id: str | None = None
        self._opened = threading.Event()
        self._last_step: dict[str, int] = {}
        self._params: dict[str, str] = {}
        self._images: set[tuple[str, int]] = set()
        self._buffered_metrics = 0
        self._dropped_metrics = 0
        self._thread: threading.Thread | None = None
        self.errors = 0  # failed MLflow calls so far (each retried)

    # ---- lifecycle ---------------------------------------------------------------------
    @property
    def run_id(self) -> str | None:
        return self._run_id

    def start(self) -> TrackingSession:
        """Start the writer thread (it opens the run first)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mlflow-writer", daemon=True)
            self._thread.start()
            with self._cond:
                self._cond.notify_all()
        return self

    def wait_open(self, timeout: float | None) -> str | None:
        """The run id once the run is open, or None if it is not open within ``timeout``."""
        self._opened.wait(timeout)
        return self._run_id

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._ops or self._busy or self._run_id is None:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    if self._stopped:
                        return False
                    self._cond.wait(0.2 if left is None else min(left, 0.2))
            finally:
                self._flushing -= 1
        return True

    def close(self, status: str, timeout: float = 60.0) -> bool:
        """Mark the run terminated (``FINISHED``/``FAILED``/``KILLED``) after a final flush."""
        self._put(_Terminate(status))
        ok = self.flush(timeout)
        with self._cond:
            self._closing = True
            lost = sum(len(op.metrics) for op in self._ops if isinstance(op, _Metrics))
            self._cond.notify_all()
        self._wake.set()
        if not ok:
            self._warn(
                f"MLflow run of job {self.target.job_id} not fully written at close: "
                f"{len(self._ops)} operations ({lost} metric values) dropped"
            )
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        return ok

    # ---- producers (called from the training thread) ------------------------------------
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if not batch:
            return
        with self._cond:
            full = self._buffered_metrics + len(batch) > MAX_BUFFERED_METRICS
            if not full:
                self._buffered_metrics += len(batch)
                self._ops.append(_Metrics(batch))
                self._cond.notify_all()
        if full:
            self._dropped_metrics += len(batch)
            if self._dropped_metrics == len(batch):
                self._warn(f"MLflow buffer full ({MAX_BUFFERED_METRICS} values): dropping new ones")

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._put(_Params({k: str(v) for k, v in params.items()}))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._put(_Tags({k: str(v) for k, v in tags.items()}))

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        self._put(_Image(key, int(step), image))

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        self._put(_Artifact(local_path, artifact_path))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._put(_Text(text, artifact_file))

    def _put(self, op: _Op) -> None:
        with self._cond:
            self._ops.append(op)
            self._cond.notify_all()

    # ---- writer thread ------------------------------------------------------------------
    def _loop(self) -> None:
        client = MlflowClient(self.target.tracking_uri)
        delay = self._retry_initial
        failing_since: float | None = None
        while True:
            with self._cond:
                while not self._closing and self._run_id is not None:
                    if not self._ops:
                        self._cond.wait()
                        continue
                    left = self._last_write + self._interval - time.monotonic()
                    if left <= 0 or self._flushing:
                        break
                    self._cond.wait(left)
                if self._closing:
                    break
                batch = self._take_batch() if self._run_id is not None else []
                self._busy = True
            try:
                if self._run_id is None:
                    self._open(client)
                else:
                    for op in batch:
                        self._apply(client, op)
                ok = True
            except Exception as err:
                ok = False
                self.errors += 1
                if self._run_id is not None and is_permanent(err):
                    ok = True  # retrying cannot help: drop these operations, keep the rest
                    self._warn(
                        f"MLflow rejected {len(batch)} operation(s) for run {self._run_id} "
                        f"({type(err).__name__}: {str(err)[:300]}); they are dropped"
                    )
                elif failing_since is None:
                    failing_since = time.monotonic()
                    self._warn(
                        f"MLflow at {self.target.tracking_uri} unreachable or failing "
                        f"({type(err).__name__}: {str(err)[:300]}); training continues, "
                        "metrics are buffered and retried"
                    )
                log.debug("MLflow call failed", exc_info=True)
            with self._cond:
                self._busy = False
                if ok:
                    for _ in batch:
                        done = self._ops.popleft()
                        if isinstance(done, _Metrics):
                            self._buffered_metrics -= len(done.metrics)
                self._cond.notify_all()
            if ok:
                if failing_since is not None:
                    self._warn(
                        f"MLflow reachable again after {time.monotonic() - failing_since:.0f} s; "
                        "buffered metrics written"
                    )
                failing_since = None
                delay = self._retry_initial
                if batch:
                    self._last_write = time.monotonic()
            else:
                self._wake.wait(delay)
                delay = min(delay * 2, self._retry_max)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _take_batch(self) -> list[_Op]:
        """Leading ops to apply together: a run of metric ops up to the batch limit, or one op."""
        if not isinstance(self._ops[0], _Metrics):
            return [self._ops[0]]
        out: list[_Op] = []
        n = 0
        for op in self._ops:
            if not isinstance(op, _Metrics):
                break
            if out and n + len(op.metrics) > MAX_METRICS_PER_APPLY:
                break
            out.append(op)
            n += len(op.metrics)
        return out

    def _open(self, client: MlflowClient) -> None:
        run_id = open_run(client, self.target)
        run = client.get_run(run_id)
        last: dict[str, int] = {}
        for key in run.data.metrics:
            history = client.get_metric_history(run_id, key)
            if history:
                last[key] = max(m.step for m in history)
        images: set[tuple[str, int]] = set()
        for info in client.list_artifacts(run_id, "images"):
            m = _IMAGE_NAME.match(info.path.rsplit("/", 1)[-1])
            if m:
                images.add((m.group("key"), int(m.group("step"))))
        self._last_step = last
        self._params = dict(run.data.params)
        self._images = images
        self._run_id = run_id
        self._opened.set()
        if self._on_open is not None:
            self._on_open(run_id)

    def _apply(self, client: MlflowClient, op: _Op) -> None:
        run_id = self._run_id
        assert run_id is not None
        if isinstance(op, _Metrics):
            fresh = [m for m in op.metrics if m.step > self._last_step.get(m.key, -1)]
            for i in range(0, len(fresh), MAX_METRICS_PER_BATCH):
                chunk = fresh[i : i + MAX_METRICS_PER_BATCH]
                client.log_batch(run_id, metrics=chunk)
                for m in chunk:  # a retry after a later chunk fails skips these
                    self._last_step[m.key] = max(m.step, self._last_step.get(m.key, -1))
        elif isinstance(op, _Params):
            self._apply_params(client, run_id, op.params)
        elif isinstance(op, _Tags):
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in op.tags.items()])
        elif isinstance(op, _Image):
            ident = (op.key.replace("/", "~"), op.step)
            if ident not in self._images:
                client.log_image(run_id, op.image, key=op.key, step=op.step)
                self._images.add(ident)
        elif isinstance(op, _Artifact):
            client.log_artifact(run_id, op.local_path, op.artifact_path)
        elif isinstance(op, _Text):
            client.log_text(run_id, op.text, op.artifact_file)
        else:
            client.set_terminated(run_id, op.status)

    def _apply_params(self, client: MlflowClient, run_id: str, params: dict[str, str]) -> None:
        new = {k: v for k, v in params.items() if k not in self._params}
        changed = sorted(k for k, v in params.items() if k in self._params and self._params[k] != v)
        if changed:
            self._warn(
                f"params {changed[:5]} differ from the values already in MLflow run {run_id}; "
                "MLflow params are immutable, the first attempt's values are kept"
            )
        items = [Param(k, v) for k, v in new.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=items[i : i + MAX_PARAMS_PER_BATCH])
        self._params.update(new)

    def _warn(self, message: str) -> None:
        log.warning(message)
        if self._on_warning is not None:
            try:
                self._on_warning(message)
            except Exception:
                log.exception("on_warning callback failed")


def is_permanent(err: Exception) -> bool:
    """An error that a retry cannot fix: a missing local file to upload, or MLflow refusing
    the request itself (HTTP 4xx other than timeouts and rate limits)."""
    if isinstance(err, FileNotFoundError | IsADirectoryError | PermissionError):
        return True
    if isinstance(err, MlflowException):
        status = err.get_http_status_code()
        return 400 <= status < 500 and status not in (408, 429)
    return False
