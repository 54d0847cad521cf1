"""Screenshots of the MLflow UI showing a DINO job's metrics and attention images.

Starts an ``mlflow server`` on 127.0.0.1 (sqlite, temporary directory), runs one small
pretraining job through :func:`worker.run.run_job` against it (synthetic data, k-NN and
attention maps every epoch), then drives Debian's headless Chromium with Playwright: on
the run's "Model metrics" tab it adds an image-grid chart of the ``attention`` images at the
last epoch, filters the charts to the DINO training signals and writes
``docs/img/mlflow_ui.png``; the image chart opened full size gives
``docs/img/mlflow_ui_images.png``. Playwright closes Chromium; the server is stopped by PID.

    .venv/bin/python benchmarks/mlflow_screenshot.py [--epochs 8] [--out docs/img]

Needs ``chromium`` (``apt-get install -y chromium``) and ``playwright`` (PyPI; never
``playwright install``: the browser is Debian's).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlflow import MlflowClient  # noqa: E402
from playwright.sync_api import Page  # noqa: E402

from benchmarks.ui_driver import chromium_page  # noqa: E402
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


def capture(run_url: str, last_epoch: int, out: Path) -> None:
    """Configure the attention image chart, filter the charts, take both screenshots."""
    with chromium_page(size=SIZE) as page:
        _metrics_view(page, run_url, last_epoch)
        page.screenshot(path=out / "mlflow_ui.png")
        _image_file_view(page, run_url, last_epoch)
        page.screenshot(path=out / "mlflow_ui_images.png")


def _text_element(test: str) -> str:
    """JavaScript: the element holding the first text node whose trimmed text ``t`` passes."""
    return (
        "(() => { const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);"
        f" let n; while ((n = w.nextNode())) {{ const t = n.textContent.trim(); if ({test})"
        " return n.parentElement; } return null; })()"
    )


def _grid_cards() -> str:
    return "Array.from(document.querySelectorAll('[data-testid=draggable-chart-cards-grid] > *'))"


def _holds(page: Page, condition: str) -> bool:
    return bool(page.evaluate(f"!!({condition})"))


def _click(page: Page, element: str) -> None:
    """Click the element a JavaScript expression finds, with real mouse events (the MLflow
    UI's menus ignore a synthetic ``.click()``); Playwright scrolls it into view first."""
    handle = page.wait_for_function(element).as_element()
    if handle is None:
        raise RuntimeError(f"not an element: {element}")
    handle.click()


def _click_until(page: Page, element: str, condition: str, tries: int = 15) -> None:
    """Click until ``condition`` holds (menus may ignore clicks while the page renders)."""
    for _ in range(tries):
        if _holds(page, condition):
            return
        _click(page, element)
        page.wait_for_timeout(1500)
    if not _holds(page, condition):
        raise TimeoutError(f"clicking {element} never led to {condition}")


def _type(page: Page, selector: str, text: str) -> None:
    page.focus(selector)
    page.keyboard.insert_text(text)


def _metrics_view(page: Page, run_url: str, last_epoch: int) -> None:
    """Model-metrics tab: the DINO signals and the image chart of the last epoch."""
    page.goto(f"{run_url}/model-metrics?workflowType=machine_learning")
    page.wait_for_function(_button("Add chart"))
    page.wait_for_timeout(2000)
    close = "document.querySelector('button[aria-label=Close]')"
    if _holds(page, close):  # the assistant panel opens on first visit
        _click_until(page, close, f"!{close}")
    _type(page, "input[placeholder='Search metric charts']", f"{CHARTS}|^{IMAGE_KEY}$")
    # MLflow adds an image-grid chart per logged image key; show it at the last epoch
    card = f"{_grid_cards()}.find(c => c.innerText.trim().startsWith({IMAGE_KEY!r}))"
    page.wait_for_function(card)
    menu = f"({card}).querySelector('[data-testid=experiment-view-compare-runs-card-menu]')"
    _click_until(page, menu, "document.querySelector('[role=menu]')")
    configure = (
        "Array.from(document.querySelectorAll('[role=menu] [role=menuitem]'))"
        ".find(e => e.innerText.trim() === 'Configure')"
    )
    dialog = "document.querySelector('[role=dialog]')"
    switch = "document.querySelector('[role=dialog] [role=switch]')"  # "show run parameters"
    _click_until(page, configure, switch)
    _click_until(page, switch, f"{switch}.getAttribute('aria-checked') === 'false'")
    step_box = "[role=dialog] input[type=number]"
    page.evaluate(f"document.querySelector({step_box!r}).select()")
    _type(page, step_box, str(last_epoch))
    page.evaluate(f"document.querySelector({step_box!r}).blur()")
    page.wait_for_timeout(1000)
    _click(page, _button("Save changes", dialog))
    page.wait_for_function(f"!{dialog}")
    drawn = f"{_grid_cards()}.every(c => c.querySelector('.js-plotly-plot, img'))"
    page.wait_for_function(drawn, timeout=180_000)
    page.wait_for_timeout(3000)


def _image_file_view(page: Page, run_url: str, last_epoch: int) -> None:
    """Artifacts tab with the last epoch's full-size attention figure open."""
    page.goto(f"{run_url}/artifacts?workflowType=machine_learning")
    folder = _text_element("t === 'images'")
    prefix = f"{IMAGE_KEY}+step+{last_epoch}+"
    item = _text_element(f"t.startsWith({prefix!r}) && t.endsWith('.png')")
    page.wait_for_function(folder)
    _click_until(page, folder, item)
    _click(page, item)
    page.wait_for_function(
        "Array.from(document.querySelectorAll('img')).some(i => i.naturalWidth > 400)"
    )
    page.wait_for_timeout(2000)


def train_demo(url: str, root: Path, epochs: int) -> str:
    """Run the demo job against the MLflow server at ``url``; the URL of its run's page."""
    spec = JobSpec(
        job_id="demo-synthetic-vit",
        config=demo_config(epochs),
        storage_uri=str(root / "job"),
        mlflow=MlflowTarget(tracking_uri=url, experiment_name="dino-demo"),
        tags={"purpose": "docs screenshot"},
    )
    result = run_job(spec)
    if result.status != SUCCEEDED or result.mlflow_run_id is None:
        raise SystemExit(f"demo job ended {result.status}: {result.error}")
    run = MlflowClient(url).get_run(result.mlflow_run_id)
    return f"{url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"


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
    if args.run_url:
        capture(args.run_url, args.epochs - 1, args.out)
    else:
        with (
            tempfile.TemporaryDirectory(prefix="dino-ui-") as tmp,
            local_mlflow_server(Path(tmp) / "server") as url,
        ):
            capture(train_demo(url, Path(tmp), args.epochs), args.epochs - 1, args.out)
    print(f"wrote {args.out / 'mlflow_ui.png'} and {args.out / 'mlflow_ui_images.png'}")


if __name__ == "__main__":
    main()
