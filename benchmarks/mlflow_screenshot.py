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
from worker.contracts import SUCCEEDED, JobSpec, MlflowTarget  # noqa: E402
from worker.mlflow_server import local_mlflow_server  # noqa: E402
from worker.run import run_job  # noqa: E402

CHARTS = "^(loss|kl|teacher_entropy|student_entropy|center_norm|lr|knn_top1_k20|attn_iou_mean_map)$"
IMAGE_KEY = "attention"
SIZE = (1600, 1450)


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
    """Configure the attention image chart, filter the charts, take both screenshots."""
    async with browser.page() as page:
        await _metrics_view(page, run_url, last_epoch)
        await page.screenshot(out / "mlflow_ui.png")
        await _image_file_view(page, run_url, last_epoch)
        await page.screenshot(out / "mlflow_ui_images.png")


def _text_element(test: str) -> str:
    """JavaScript: the element holding the first text node whose trimmed text ``t`` passes."""
    return (
        "(() => { const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);"
        f" let n; while ((n = w.nextNode())) {{ const t = n.textContent.trim(); if ({test})"
        " return n.parentElement; } return null; })()"
    )


def _grid_cards() -> str:
    return "Array.from(document.querySelectorAll('[data-testid=draggable-chart-cards-grid] > *'))"


async def _metrics_view(page: Page, run_url: str, last_epoch: int) -> None:
    """Model-metrics tab: the DINO signals and the image chart of the last epoch."""
    await page.goto(f"{run_url}/model-metrics?workflowType=machine_learning")
    await page.wait(_button("Add chart"))
    await page.sleep(2)
    close = "document.querySelector('button[aria-label=Close]')"
    if await page.value(f"!!{close}"):  # the assistant panel opens on first visit
        await page.click_until(close, f"!{close}")
    await page.type("input[placeholder='Search metric charts']", f"{CHARTS}|^{IMAGE_KEY}$")
    # MLflow adds an image-grid chart per logged image key; show it at the last epoch
    card = f"{_grid_cards()}.find(c => c.innerText.trim().startsWith({IMAGE_KEY!r}))"
    await page.wait(card)
    menu = f"({card}).querySelector('[data-testid=experiment-view-compare-runs-card-menu]')"
    await page.click_until(menu, "document.querySelector('[role=menu]')")
    configure = (
        "Array.from(document.querySelectorAll('[role=menu] [role=menuitem]'))"
        ".find(e => e.innerText.trim() === 'Configure')"
    )
    dialog = "document.querySelector('[role=dialog]')"
    switch = "document.querySelector('[role=dialog] [role=switch]')"  # "show run parameters"
    await page.click_until(configure, switch)
    await page.click_until(switch, f"{switch}.getAttribute('aria-checked') === 'false'")
    step_box = "[role=dialog] input[type=number]"
    await page.value(f"document.querySelector({step_box!r}).select()")
    await page.type(step_box, str(last_epoch))
    await page.value(f"document.querySelector({step_box!r}).blur()")
    await page.sleep(1)
    await page.click(_button("Save changes", dialog))
    await page.wait(f"!{dialog}")
    drawn = f"{_grid_cards()}.every(c => c.querySelector('.js-plotly-plot, img'))"
    await page.wait(drawn, timeout=180)
    await page.sleep(3)


async def _image_file_view(page: Page, run_url: str, last_epoch: int) -> None:
    """Artifacts tab with the last epoch's full-size attention figure open."""
    await page.goto(f"{run_url}/artifacts?workflowType=machine_learning")
    folder = _text_element("t === 'images'")
    prefix = f"{IMAGE_KEY}+step+{last_epoch}+"
    item = _text_element(f"t.startsWith({prefix!r}) && t.endsWith('.png')")
    await page.wait(folder)
    await page.click_until(folder, item)
    await page.click(item)
    await page.wait("Array.from(document.querySelectorAll('img')).some(i => i.naturalWidth > 400)")
    await page.sleep(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument(
        "--run-url",
        help="screenshot this existing run (http://host:port/#/experiments/E/runs/R) instead "
        "of training one; --epochs then names its last logged epoch + 1",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dino-ui-") as tmp:
        root = Path(tmp)
        if args.run_url:
            with Browser(root / "chromium-profile", size=SIZE) as browser:
                asyncio.run(capture(browser, args.run_url, args.epochs - 1, args.out))
            return
        with local_mlflow_server(root / "server") as url:
            spec = JobSpec(
                job_id="demo-synthetic-vit",
                config=demo_config(args.epochs),
                storage_uri=str(root / "job"),
                mlflow=MlflowTarget(tracking_uri=url, experiment_name="dino-demo"),
                tags={"purpose": "docs screenshot"},
            )
            result = run_job(spec)
            if result.status != SUCCEEDED or result.mlflow_run_id is None:
                raise SystemExit(f"demo job ended {result.status}: {result.error}")
            run = MlflowClient(url).get_run(result.mlflow_run_id)
            run_url = f"{url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
            with Browser(root / "chromium-profile", size=SIZE) as browser:
                asyncio.run(capture(browser, run_url, args.epochs - 1, args.out))
    print(f"wrote {args.out / 'mlflow_ui.png'} and {args.out / 'mlflow_ui_images.png'}")


if __name__ == "__main__":
    main()
