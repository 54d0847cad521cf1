"""Screenshots of the MLflow UI showing a DINO job's metrics and attention images.

Starts an ``mlflow server`` on 127.0.0.1 (sqlite, temporary directory), runs one small
pretraining job through :func:`worker.run.run_job` against it (synthetic data, k-NN and
attention maps every epoch), then drives headless Chromium over the DevTools protocol: on
the run's "Model metrics" tab it adds an image-grid chart of the ``attention`` images at the
last epoch, filters the charts to the DINO training signals and writes
``docs/img/mlflow_ui.png``; the image chart opened full size gives
``docs/img/mlflow_ui_images.png``. Chromium and the server are stopped by PID.

    .venv/bin/python benchmarks/mlflow_screenshot.py [--epochs 8] [--out docs/img]

Needs ``chromium`` (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlflow import MlflowClient  # noqa: E402

from benchmarks.ui_driver import Browser, Page  # noqa: E402
from worker.mlflow_server import local_mlflow_server  # noqa: E402
from worker.run import run_job  # noqa: E402
from worker.spec import JobSpec, MlflowTarget  # noqa: E402

CHARTS = "^(loss|kl|teacher_entropy|student_entropy|center_norm|lr|knn_top1_k20|attn_iou_mean_map)$"
IMAGE_KEY = "attention"


def demo_config(epochs: int) -> dict[str, Any]:
    """A small ViT on the synthetic shapes: a few minutes on 2 CPU cores."""
    return {
        "model": {"arch": "vit_custom", "patch_size": 4, "embed_dim": 64, "depth": 3,
                  "num_heads": 4, "drop_path_rate": 0.0},
        "head": {"out_dim": 256, "hidden_dim": 128, "bottleneck_dim": 64},
        "crops": {"global_size": 32, "local_size": 16, "local_number": 2,
                  "pipeline": "batched"},
        "loss": {"warmup_teacher_temp_epochs": 2},
        "optim": {"warmup_epochs": 2, "lr": 0.002},
        "data": {"dataset": "synthetic", "synthetic_size": 512, "synthetic_image_size": 32},
        "eval": {"knn_every_epochs": 1, "attention_every_epochs": 1, "knn_test_limit": 256},
        "train": {"epochs": epochs, "batch_size": 64, "log_every_steps": 2, "device": "cpu"},
    }  # fmt: skip


def _button(text: str, scope: str = "document") -> str:
    return (
        f"Array.from({scope}.querySelectorAll('button')).find(b => b.innerText.trim() === {text!r})"
    )


async def capture(browser: Browser, run_url: str, last_epoch: int, out: Path) -> None:
    """Add the image chart, filter the charts, take both screenshots."""
    async with browser.page() as page:
        await _capture(page, run_url, last_epoch, out)


async def _capture(page: Page, run_url: str, last_epoch: int, out: Path) -> None:
    await page.goto(f"{run_url}/model-metrics")
    await page.wait(_button("Add chart"))
    close = "document.querySelector('button[aria-label=Close]')"
    if await page.value(f"!!{close}"):
        await page.click(close)
    image_item = (
        "document.querySelector('[data-testid=experiment-view-compare-runs-chart-type-image]')"
    )
    await page.click_until(_button("Add chart"), image_item)
    await page.click_until(image_item, "document.querySelector('[role=dialog]')")
    images_select = (
        "Array.from(document.querySelectorAll('[role=dialog] span'))"
        ".find(e => e.innerText.trim() === 'Images' && e.children.length === 0)"
    )
    await page.click_until(images_select, "document.querySelector('[role=option]')")
    await page.click(
        "Array.from(document.querySelectorAll('[role=option]'))"
        f".find(e => e.innerText.trim() === {IMAGE_KEY!r})"
    )
    await page.value("document.activeElement && document.activeElement.blur()")
    await page.click("document.querySelector('[role=dialog] [role=switch]')")  # hide params
    step_box = "[role=dialog] input[type=number]"
    await page.value(f"document.querySelector({step_box!r}).select()")
    await page.type(step_box, str(last_epoch))
    await page.value(f"document.querySelector({step_box!r}).blur()")
    await page.sleep(2)
    await page.click(_button("Add chart", "document.querySelector('[role=dialog]')"))
    await page.wait("!document.querySelector('[role=dialog]')")
    await page.type("input[placeholder='Search metric charts']", f"{CHARTS}|^{IMAGE_KEY}$")
    await page.settle()
    await page.screenshot(out / "mlflow_ui.png")
    card = (
        "Array.from(document.querySelectorAll('[data-testid=draggable-chart-cards-grid] > *'))"
        f".find(c => c.innerText.trim().startsWith({IMAGE_KEY!r}))"
    )
    dialog = "document.querySelector('[role=dialog]')"
    await page.click_until(f"({card}).querySelector('button')", dialog)
    await page.settle()
    await page.screenshot(out / "mlflow_ui_images.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dino-ui-") as tmp:
        root = Path(tmp)
        with local_mlflow_server(root / "server") as url:
            spec = JobSpec(
                job_id="demo-synthetic-vit",
                config=demo_config(args.epochs),
                storage_uri=str(root / "job"),
                mlflow=MlflowTarget(tracking_uri=url, experiment_name="dino-demo"),
                tags={"purpose": "docs screenshot"},
            )
            result = run_job(spec)
            if result.status != "SUCCEEDED" or result.mlflow_run_id is None:
                raise SystemExit(f"demo job ended {result.status}: {result.error}")
            run = MlflowClient(url).get_run(result.mlflow_run_id)
            run_url = f"{url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
            with Browser(root / "chromium-profile", size=(1600, 1200)) as browser:
                asyncio.run(capture(browser, run_url, args.epochs - 1, args.out))
    for name in ("mlflow_ui.png", "mlflow_ui_images.png"):
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
