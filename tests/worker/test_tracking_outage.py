"""MLflow server unreachable at first: training-side calls never block, metrics are buffered,
a warning is emitted, and everything lands once the server comes up (real ``mlflow server``)."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from tests.worker.helpers import free_port, mlflow_server
from worker.mlflow_run import TAG_JOB, RunTarget
from worker.tracking_session import TrackingSession


def test_metrics_buffered_while_server_down_then_written(tmp_path: Path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    warnings: list[str] = []
    target = RunTarget(uri, "outage", "job-outage", "job-outage", tags={TAG_JOB: "job-outage"})
    session = TrackingSession(target, on_warning=warnings.append, retry_max_s=2.0).start()
    for step in range(1, 21):
        session.log_metrics({"loss": 10.0 - step}, step)
    session.log_params({"lr": 0.1})
    assert session.wait_open(3.0) is None  # nothing listens yet
    assert not session.flush(0.5)
    assert any("unreachable" in w for w in warnings)
    with mlflow_server(tmp_path / "srv", port=port) as url:
        assert url == uri
        assert session.flush(120)
        assert session.close("FINISHED", 60)
        client = MlflowClient(uri)
        run = client.get_run(session.run_id or "")
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
        assert steps == list(range(1, 21))
        assert run.data.params == {"lr": "0.1"}
        assert run.info.status == "FINISHED"
    assert any("reachable again" in w for w in warnings)
