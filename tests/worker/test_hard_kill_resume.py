"""A subprocess running run_job is SIGKILLed mid-run; the next attempt resumes from the last
checkpoint into the same MLflow run, whose metric history then has no gap and no duplicate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow import MlflowClient

from tests.worker.helpers import tiny_config_dict
from worker.contracts import JobSpec, MlflowTarget
from worker.mlflow_run import TAG_JOB
from worker.run import run_job

CHILD = """
import json, sys
from worker.run import run_job
from worker.contracts import JobSpec, event_to_json
spec = JobSpec.model_validate_json(open(sys.argv[1]).read())
events = open(sys.argv[2], "a", buffering=1)
run_job(spec, on_progress=lambda e: events.write(json.dumps(event_to_json(e)) + "\\n"))
"""


def _events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def test_hard_killed_attempt_resumes_into_one_gapless_run(
    dino_home: Path, sqlite_uri: str, tmp_path: Path
) -> None:
    # log every step, checkpoint every 3: the killed attempt has logged steps past its last
    # checkpoint, which the next attempt recomputes and must not log twice
    cfg = tiny_config_dict(epochs=6, log_every_steps=1, checkpoint_every_steps=3)
    spec = JobSpec(
        job_id="hard-kill",
        config=cfg,
        storage_uri=str(tmp_path / "job"),
        mlflow=MlflowTarget(tracking_uri=sqlite_uri, experiment_name="hard-kill"),
    )
    spec_file, events_file = tmp_path / "spec.json", tmp_path / "events.jsonl"
    spec_file.write_text(spec.model_dump_json())
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(spec_file), str(events_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not any(
            e["event"] == "progress" and int(e["step"]) >= 8  # type: ignore[call-overload]
            for e in _events(events_file)
        ):
            assert child.poll() is None, "the child ended before it could be killed"
            assert time.monotonic() < deadline, "the child made no progress"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)  # our own child, by its PID
        child.wait(timeout=30)
    seen = _events(events_file)
    killed_at = max(int(e["step"]) for e in seen if e["event"] == "progress")  # type: ignore[call-overload]
    assert killed_at < 24  # it really was killed mid-run
    run_id = str(seen[0]["mlflow_run_id"])

    second = run_job(spec.model_copy(update={"attempt": 2}))
    assert second.status == "SUCCEEDED", second.error
    assert second.mlflow_run_id == run_id
    client = MlflowClient(sqlite_uri)
    exp = client.get_experiment_by_name("hard-kill")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG_JOB}` = 'hard-kill'")
    assert [r.info.run_id for r in runs] == [run_id]
    for key in ("loss", "lr", "teacher_entropy"):
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(steps) == list(range(1, 25)), key  # 4 steps x 6 epochs, each once
