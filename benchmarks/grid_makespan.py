"""Scheduling overhead of the orchestrator on a local Ray: grid makespan and start latency.

1. Makespan of an 8-job grid (one CPU per job, ``--cpus`` slots) against the ideal
   ``sum(job times) / slots``, where a job's time is what the job function itself measured
   between its start and its end. Target: ratio <= 1.10. Also reported: the ratio against
   the time each attempt held its slot (claim -> end, which includes starting the attempt's
   Ray worker process), the slot hand-off gap and the claim -> job start time.
2. Submit -> RUNNING latency on a warm cluster with a free slot (jobs submitted one at a time):
   from the job row's creation to its claim, and on to the worker's ``started`` event.
   Target: p50 <= 1 s for submit -> RUNNING.

Both are measured twice in one run (issue #18): with a new Ray actor process for every attempt
(``warm_actor_idle_s: 0``) and with the default kept actors, where an actor whose attempt
succeeded runs the next job of its shape. Each grid starts from a fresh orchestrator loop, so
no actor is kept from an earlier grid: its first ``slots`` jobs start cold. Target for the
kept actors: ratio <= 1.10 for 10-s jobs and claim -> job start p50 <= 0.2 s.

The loop is the production one (:func:`orchestrator.loop.run_orchestrator`, default settings)
on a SQLite database; jobs are sleeps, so the figures are the orchestrator's and Ray's
overhead, not training. Usage::

    python -m benchmarks.grid_makespan [--cpus 2] [--job-seconds 5 10] [--latency-jobs 12]

"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from worker.contracts import SUCCEEDED, CancelFn, JobResult, ProgressFn, Started

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "grid_makespan.json"
JOB_FN = "benchmarks.grid_makespan:sleep_job"


def sleep_job(
    spec: Any,
    on_progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
) -> Any:
    """Sleep ``spec.tags['b.seconds']``; report the wall time it measured for itself."""
    start = time.time()
    if on_progress:
        on_progress(Started(mlflow_run_id=None, attempt=spec.attempt))
    seconds = float(spec.tags.get("b.seconds", "0"))
    while time.time() - start < seconds:
        if should_cancel and should_cancel():
            break
        time.sleep(min(0.05, max(0.0, seconds - (time.time() - start))))
    end = time.time()
    return JobResult(
        job_id=spec.job_id,
        status=SUCCEEDED,
        metrics={"t_start": start, "t_end": end, "job_s": end - start},
    )


def _wait(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish in time")
        time.sleep(0.02)


def _grid_makespan(db: Any, user: Any, seconds: float, slots: int) -> dict[str, Any]:
    from orchestrator.schemas import GridRequest
    from orchestrator.service import get_grid, job_attempts, submit_grid

    req = GridRequest(
        name=f"makespan-{seconds:g}s",
        axes={"train.seed": list(range(8))},
        evals=[],
        reuse=False,  # every measurement runs its jobs (same configs in each mode)
        tags={"b.seconds": str(seconds)},
    )
    t0 = time.time()
    grid = submit_grid(db, user, req)
    _wait(lambda: get_grid(db, user, grid.id).status == SUCCEEDED, 60 + 20 * seconds)
    jobs = get_grid(db, user, grid.id).jobs
    attempts = sorted((job_attempts(db, user, j.id)[0] for j in jobs), key=lambda a: a.claimed_at)
    ended = sorted(a.ended_at.timestamp() for a in attempts if a.ended_at)
    handoff = [  # a slot frees (attempt ends) -> the next queued job is claimed
        a.claimed_at.timestamp() - ended[i] for i, a in enumerate(attempts[slots:])
    ]
    start = [  # claimed -> the job function runs in its new Ray worker process
        (a.started_at - a.claimed_at).total_seconds() for a in attempts if a.started_at
    ]
    ends = [j.result_metrics["t_end"] for j in jobs]
    job_s = [j.result_metrics["job_s"] for j in jobs]
    held = [(a.ended_at - a.claimed_at).total_seconds() for a in attempts if a.ended_at]
    makespan = max(ends) - t0
    ideal = sum(job_s) / slots
    ideal_held = sum(held) / slots
    return {
        "jobs": len(jobs),
        "job_seconds": seconds,
        "slots": slots,
        "sum_job_s": round(sum(job_s), 3),
        "ideal_s": round(ideal, 3),
        "makespan_s": round(makespan, 3),
        "ratio": round(makespan / ideal, 4),
        "overhead_per_job_s": round((makespan - ideal) * slots / len(jobs), 3),
        "ideal_if_slot_held_claim_to_end_s": round(ideal_held, 3),
        "ratio_vs_slot_held": round(makespan / ideal_held, 4),
        "slot_handoff_s": _summary(handoff),
        "claim_to_job_start_s": _summary(start),
    }


def _latency(db: Any, user: Any, n: int) -> dict[str, Any]:
    from orchestrator.schemas import JobRequest
    from orchestrator.service import get_job, job_attempts

    to_running, to_started = [], []
    for i in range(n):
        job = submit_job_and_wait(
            db, user, JobRequest(name=f"lat{i}", tags={"b.seconds": "0.2"}, reuse=False)
        )
        attempt = job_attempts(db, user, job)[0]
        view = get_job(db, user, job)
        to_running.append((attempt.claimed_at - view.created_at).total_seconds())
        if attempt.started_at is not None:
            to_started.append((attempt.started_at - view.created_at).total_seconds())
    return {
        "jobs": n,
        "submit_to_running_s": _summary(to_running),
        "submit_to_worker_started_s": _summary(to_started),
    }


def submit_job_and_wait(db: Any, user: Any, req: Any) -> str:
    from orchestrator.service import get_job, submit_job

    job = submit_job(db, user, req)
    _wait(lambda: get_job(db, user, job.id).status == SUCCEEDED, 120)
    time.sleep(0.5)  # the slot is free again before the next submit
    return job.id


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 3),  # nearest rank
        "max": round(ordered[-1], 3),
        "min": round(ordered[0], 3),
    }


def _with_loop(settings: Any, step: Callable[[], Any]) -> Any:
    """Run ``step`` while a fresh orchestrator loop runs (it kills its kept actors on exit)."""
    from orchestrator.loop import run_orchestrator

    stop = threading.Event()
    loop = threading.Thread(target=run_orchestrator, args=(stop, settings), daemon=True)
    loop.start()
    try:
        return step()
    finally:
        stop.set()
        loop.join(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--job-seconds", type=float, nargs="+", default=[5.0, 10.0])
    parser.add_argument("--latency-jobs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="dino-bench-")
    os.environ["DINO_HOME"] = home
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
    )
    import ray

    from benchmarks._common import machine  # here: it imports torch, which jobs should not
    from orchestrator.db import open_database
    from orchestrator.service import create_user, hash_token
    from orchestrator.settings import OrchestratorSettings

    t = time.time()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, namespace="dino")
    ray_init_s = time.time() - t
    db_url = f"sqlite:///{home}/dino.db"
    db = open_database(db_url)
    user = create_user(db, "bench", hash_token("bench"))
    modes: dict[str, Any] = {}
    try:
        for mode, idle_s in (("new_process", 0.0), ("kept_actors", 20.0)):
            settings = OrchestratorSettings(
                database_url=db_url, job_fn=JOB_FN, mlflow_setup=False, warm_actor_idle_s=idle_s
            )
            _with_loop(settings, partial(_grid_makespan, db, user, 0.5, args.cpus))  # warm-up
            grids = [
                _with_loop(settings, partial(_grid_makespan, db, user, sec, args.cpus))
                for sec in args.job_seconds
            ]
            latency = _with_loop(settings, partial(_latency, db, user, args.latency_jobs))
            modes[mode] = {
                "warm_actor_idle_s": idle_s,
                "grids": grids,
                "latency": latency,
                "met": {
                    "makespan": {f"{g['job_seconds']:g}s": g["ratio"] <= 1.10 for g in grids},
                    "claim_to_start_p50": {
                        f"{g['job_seconds']:g}s": g["claim_to_job_start_s"]["p50"] <= 0.2
                        for g in grids
                    },
                    "latency": latency["submit_to_running_s"]["p50"] <= 1.0,
                },
            }
    finally:
        ray.shutdown()
        db.dispose()
        shutil.rmtree(home, ignore_errors=True)
    out = {
        "benchmark": "grid_makespan",
        "machine": {
            **machine(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "ray": ray.__version__,
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "ray_init_s": round(ray_init_s, 2),
        "modes": modes,
        "targets": {
            "makespan_ratio_max": 1.10,
            "claim_to_job_start_p50_max_s": 0.2,
            "submit_to_running_p50_max_s": 1.0,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
