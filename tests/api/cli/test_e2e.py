"""End to end: ``dino submit configs/grids/example_grid.yaml --watch`` (the CLI, in process)
against a real uvicorn server, a real orchestrator loop on a real Ray node running the real
worker (DINO pretraining of a 2-block ViT, k-NN evaluation, MLflow sqlite store), then the
summary as JSON, CSV and PNG, the job detail, metrics and the cluster view."""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from api.cli.main import app
from tests.api.conftest import Server, orchestrating, running_server
from tests.orchestrator.raynodes import RayNode
from worker.deployment import default_tracking_uri
from worker.mlflow_store import prepare_tracking_store

pytestmark = pytest.mark.slow
GRID_FILE = "configs/grids/example_grid.yaml"
WATCH_TIMEOUT_S = 480


@pytest.fixture(scope="module")
def live(api_home: Path, ray_head: RayNode) -> Iterator[Server]:
    """An api on its own database with an orchestrator loop (in a thread) on ``ray_head``."""
    prepare_tracking_store(default_tracking_uri())
    with (
        running_server(api_home / "e2e.db", api_home / "datasets") as srv,
        orchestrating(srv, ray_head),
    ):
        yield srv


def test_grid_from_yaml_to_summary(live: Server, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"DINO_API_URL": live.url, "DINO_TOKEN": live.tokens["alice"], "COLUMNS": "200"}
    args = ["submit", GRID_FILE, "--watch", "--timeout", str(WATCH_TIMEOUT_S)]
    result = runner.invoke(app, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    grid_id = re.search(r"grid-[0-9a-f]{12}", result.output).group(0)  # type: ignore[union-attr]
    assert "SUCCEEDED" in result.output and "knn_top1" in result.output

    with live.client("alice") as c:
        summary = c.get(f"/v1/grids/{grid_id}/summary").json()
        csv_text = c.get(f"/v1/grids/{grid_id}/summary", headers={"Accept": "text/csv"}).text
        png = c.get(f"/v1/grids/{grid_id}/summary", params={"format": "png"})
        grid = c.get(f"/v1/grids/{grid_id}").json()
        detail = c.get(f"/v1/jobs/{summary['run_table'][0]['job_id']}").json()
    with live.client("root") as admin:
        metrics = admin.get("/metrics").text
        cluster = admin.get("/v1/cluster").json()

    assert summary["status"] == "SUCCEEDED" and grid["counts"] == {"SUCCEEDED": 8 + 1}
    table = summary["table"]
    temps, crops = [0.04, 0.07], [2, 4]
    assert [(r["loss.teacher_temp"], r["crops.local_number"]) for r in table] == list(
        itertools.product(temps, crops)
    )
    for row in table:  # one seed: n = 1, no spread
        assert row["status"] == "SUCCEEDED" and row["collapsed"] == 0 and row["n_seeds"] == 1
        assert math.isfinite(row["loss"]) and 0 < row["loss"] < math.log(64) * 2
        assert 0.0 <= row["knn_top1"] <= 100.0 and row["knn_top1_std"] is None
        assert 0.0 <= row["knn_random_init"] <= 100.0  # from the grid's baselines job
    assert all(r["mlflow_run_id"] for r in summary["run_table"])
    assert summary["columns"][:3] == ["combination", "loss.teacher_temp", "crops.local_number"]
    (base,) = summary["baselines"]
    assert base["status"] == "SUCCEEDED" and base["knn_random_init_n"] == 1

    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(rows) == 4
    for got, want in zip(rows, table, strict=True):
        assert float(got["knn_top1"]) == pytest.approx(want["knn_top1"])
        assert int(got["combination"]) == want["combination"]

    assert png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.format == "PNG" and image.width > 300 and image.height > 100

    assert detail["status"] == "SUCCEEDED" and detail["progress"]["fraction"] == 1.0
    assert detail["attempts"][-1]["status"] == "SUCCEEDED"  # (a crashed attempt is retried)
    assert len(detail["attempts"]) == detail["attempt"]
    moves = [(e["from_status"], e["to_status"]) for e in detail["events"] if e["to_status"]]
    assert moves[:2] == [(None, "QUEUED"), ("QUEUED", "RUNNING")]
    assert moves[-1] == ("RUNNING", "SUCCEEDED")
    assert detail["mlflow_run_url"].endswith(f"/#/runs/{detail['mlflow_run_id']}")
    assert Path(detail["checkpoint_uri"]).is_file()

    assert 'dino_jobs{state="SUCCEEDED"} 9' in metrics
    # sample values are floats in the exposition format ("9.0" as prometheus_client writes it)
    attempts = re.search(r"^dino_scheduling_latency_seconds_count (\S+)$", metrics, re.M)
    assert attempts is not None and float(attempts.group(1)) >= 9
    assert len(cluster["orchestrators"]) == 1 and cluster["resources_total"]["CPU"] == 2

    show = runner.invoke(app, ["grid", "show", grid_id], env=env, catch_exceptions=False)
    assert show.exit_code == 0 and show.output.count("SUCCEEDED") == 4 + 1 + 1  # + baselines
