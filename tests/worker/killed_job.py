"""Run a job in a child process and SIGKILL it mid-run; check the run it leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow import MlflowClient

from worker.contracts import JobSpec
from worker.mlflow_run import TAG_JOB

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import json, sys
from worker.run import run_job
from worker.contracts import JobSpec, event_to_json
spec = JobSpec.model_validate_json(open(sys.argv[1]).read())
events = open(sys.argv[2], "a", buffering=1)
run_job(spec, on_progress=lambda e: events.write(json.dumps(event_to_json(e)) + "\\n"))
"""


def read_events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _step(event: dict[str, object]) -> int:
    step = event["step"]
    assert isinstance(step, int)
    return step


def kill_mid_run(spec: JobSpec, work: Path, at_step: int) -> tuple[int, str]:
    """Run ``spec`` in a child and SIGKILL it once it reports ``at_step``; returns the last
    step it reported and its MLflow run id."""
    spec_file, events_file = work / f"{spec.job_id}.json", work / f"{spec.job_id}.events"
    spec_file.write_text(spec.model_dump_json())
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(spec_file), str(events_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not any(
            e["event"] == "progress" and _step(e) >= at_step for e in read_events(events_file)
        ):
            assert child.poll() is None, "the child ended before it could be killed"
            assert time.monotonic() < deadline, "the child made no progress"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)  # our own child, by its PID
        child.wait(timeout=30)
    seen = read_events(events_file)
    killed_at = max(_step(e) for e in seen if e["event"] == "progress")
    return killed_at, str(seen[0]["mlflow_run_id"])


def assert_one_gapless_run(
    client: MlflowClient, experiment: str, job_id: str, run_id: str, last_step: int
) -> None:
    """The job has exactly ``run_id``, whose metrics hold each step 1..last_step once."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_JOB}` = '{job_id}'")
    assert [r.info.run_id for r in runs] == [run_id]
    for key in ("loss", "lr", "teacher_entropy"):
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(steps) == list(range(1, last_step + 1)), key
