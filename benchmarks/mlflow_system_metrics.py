"""Does MLflow's own system-metrics logging fit a job's run? (the evidence behind
``worker/system_metrics.py``).

Against a real ``mlflow server`` on 127.0.0.1, through MLflow's documented switch
(``mlflow.start_run(run_id=..., log_system_metrics=True)``, sampling every 0.5 s):

1. two "attempts" resume the same run: how many runs the experiment holds and the steps of
   ``system/cpu_utilization_percentage`` after each (do they continue or collide?);
2. a third attempt while the server goes away for ``--outage-s`` seconds and comes back on
   the same port and store: is MLflow's sampler thread still alive, and how many samples
   arrive after the server is back?

Writes ``benchmarks/results/mlflow_system_metrics.json``.

    .venv/bin/python -m benchmarks.mlflow_system_metrics [--outage-s 3 --after-s 6]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import machine, write_json  # noqa: E402
from worker.mlflow_server import free_port, local_mlflow_server  # noqa: E402

KEY = "system/cpu_utilization_percentage"
SAMPLE_S = 0.5


def _steps(client: MlflowClient, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, KEY))


def _sampler_alive() -> bool:
    return any(t.name == "SystemMetricsMonitor" and t.is_alive() for t in threading.enumerate())


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--attempt-s", type=float, default=3.0)
    ap.add_argument("--outage-s", type=float, default=3.0)
    ap.add_argument("--after-s", type=float, default=6.0)
    args = ap.parse_args()
    mlflow.set_system_metrics_sampling_interval(SAMPLE_S)
    res: dict[str, Any] = {"machine": machine(), "mlflow": mlflow.__version__}
    with tempfile.TemporaryDirectory(prefix="dino-sysmetrics-") as tmp:
        store, port = Path(tmp) / "server", free_port()
        with local_mlflow_server(store, port=port, start_timeout_s=600) as url:
            mlflow.set_tracking_uri(url)
            client = MlflowClient(url)
            exp = client.create_experiment("system-metrics-check")
            run_id = client.create_run(exp).info.run_id
            attempts = []
            for _ in range(2):
                with mlflow.start_run(run_id=run_id, log_system_metrics=True):
                    time.sleep(args.attempt_s)
                attempts.append(_steps(client, run_id))
            res["steps_after_each_attempt"] = attempts
            res["runs_in_experiment"] = len(client.search_runs([exp]))
            mlflow.start_run(run_id=run_id, log_system_metrics=True)
            time.sleep(args.attempt_s)
            before = _steps(client, run_id)
        time.sleep(args.outage_s)  # the server is down
        res["sampler_alive_during_outage"] = _sampler_alive()
        with local_mlflow_server(store, port=port, start_timeout_s=600):
            time.sleep(args.after_s)
            after = _steps(client, run_id)
            res["sampler_alive_after_outage"] = _sampler_alive()
            mlflow.end_run()
    res["outage_s"] = args.outage_s
    res["samples_expected_after_outage"] = int(args.after_s / SAMPLE_S)
    res["samples_logged_after_outage"] = len([s for s in after if s > before[-1]])
    path = write_json("mlflow_system_metrics", res)
    print(res)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
