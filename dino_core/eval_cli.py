"""``dino eval knn|linear|attention CHECKPOINT``: score a checkpoint as the paper does.

Each command prints a table of the trained model beside the random-init and raw-pixel
baselines, writes ``<out>/<kind>.json`` (and, for attention, PNG figures) and exits non-zero
with a one-line reason when the checkpoint, data or options are unusable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dino_core.checkpoint import CheckpointError
from dino_core.config import ConfigError
from dino_core.data import DataNotFoundError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Evaluate frozen DINO features: weighted k-NN, linear probe, attention maps.",
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

CheckpointArg = typer.Argument(..., help="checkpoint file (local path or fsspec URI)")
DataOpt = typer.Option(None, "--data", help="dataset name (default: the checkpoint's)")
RootOpt = typer.Option(None, "--root", help="dataset directory")
SplitOpt = typer.Option(None, "--split", help="memory / probe-training split, e.g. train")
EvalSplitOpt = typer.Option(None, "--eval-split", help="query / test split, e.g. 'test[:1000]'")
LimitOpt = typer.Option(None, "--limit", min=1, help="first N images of each split")
OutOpt = typer.Option(None, "--out", help="output dir (default: <run>/eval/<ckpt>-<which>)")
WhichOpt = typer.Option("teacher", "--which", help="teacher (paper) or student")
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N")
BatchOpt = typer.Option(256, "--batch-size", min=1, help="images per forward pass")
BaselinesOpt = typer.Option(True, "--baselines/--no-baselines", help="random init, raw pixels")
ProgressOpt = typer.Option(True, "--progress/--no-progress", help="progress bars")


def _data(
    data: str | None, root: str | None, split: str | None, eval_split: str | None, limit: int | None
) -> Any:
    from dino_core.eval.run import DataOverrides

    return DataOverrides(data, root, split, eval_split, limit)


def _guarded(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run an evaluation; known user errors become a red line and exit code 2."""
    try:
        return fn()
    except (ConfigError, CheckpointError, DataNotFoundError, ValueError) as err:
        err_console.print(f"[red]error:[/red] {err}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def _header(result: dict[str, Any]) -> str:
    return (
        f"{result['which']} of {result['checkpoint']} ({result['arch']}) on "
        f"{result['dataset']}: {result['n_train']} train / {result['n_test']} test images, "
        f"{result['num_classes']} classes, {result['device']}"
    )


def _footer(result: dict[str, Any]) -> None:
    for key, path in result.get("files", {}).items():
        console.print(f"{key}: {path}", highlight=False)


def _check_which(which: str) -> None:
    if which not in ("teacher", "student"):
        err_console.print(f"[red]error:[/red] --which {which!r}: choose teacher or student")
        raise typer.Exit(2)


@app.command("knn")
def knn_command(
    checkpoint: str = CheckpointArg,
    data: str | None = DataOpt,
    root: str | None = RootOpt,
    split: str | None = SplitOpt,
    eval_split: str | None = EvalSplitOpt,
    limit: int | None = LimitOpt,
    out: Path | None = OutOpt,
    which: str = WhichOpt,
    device: str = DeviceOpt,
    k: list[int] = typer.Option([], "--k", help="k (repeatable; default eval.knn_k, paper 20)"),
    temperature: float | None = typer.Option(None, "--temperature", help="T (paper 0.07)"),
    batch_size: int = BatchOpt,
    baselines: bool = BaselinesOpt,
    progress: bool = ProgressOpt,
) -> None:
    """Weighted k-NN on L2-normalised CLS features (paper Sec. 4.1: k=20, T=0.07)."""
    from dino_core.eval.run import run_knn_eval

    _check_which(which)
    result = _guarded(
        lambda: run_knn_eval(
            checkpoint, which=which, data=_data(data, root, split, eval_split, limit),
            out_dir=out, device=device, ks=k or None, temperature=temperature,
            batch_size=batch_size, baselines=baselines, progress=progress,
        )
    )  # fmt: skip
    ks = result["settings"]["ks"]
    console.print(_header(result), highlight=False)
    table = Table(title=f"weighted k-NN, T={result['settings']['temperature']}")
    table.add_column("model")
    for kk in ks:
        table.add_column(f"top-1 k={kk}", justify="right")
        table.add_column(f"top-5 k={kk}", justify="right")
    for name, rep in result["results"].items():
        cells = []
        for kk in ks:
            cells += [f"{rep[f'k={kk}']['top1']:.2f}", f"{rep[f'k={kk}']['top5']:.2f}"]
        table.add_row(name, *cells)
    console.print(table)
    _footer(result)


@app.command("linear")
def linear_command(
    checkpoint: str = CheckpointArg,
    data: str | None = DataOpt,
    root: str | None = RootOpt,
    split: str | None = SplitOpt,
    eval_split: str | None = EvalSplitOpt,
    limit: int | None = LimitOpt,
    out: Path | None = OutOpt,
    which: str = WhichOpt,
    device: str = DeviceOpt,
    epochs: int = typer.Option(100, "--epochs", min=1, help="probe epochs (official 100)"),
    lr: float = typer.Option(0.001, "--lr", help="lr per 256 images (official 0.001)"),
    probe_batch_size: int = typer.Option(256, "--probe-batch-size", min=1),
    n_last_blocks: int | None = typer.Option(
        None, "--n-last-blocks", min=1, help="CLS of the last n blocks (default 4 for ViTs)"
    ),
    avgpool: bool = typer.Option(False, "--avgpool", help="append pooled patch tokens"),
    seed: int | None = typer.Option(None, "--seed", help="default: the run's train.seed"),
    batch_size: int = BatchOpt,
    baselines: bool = BaselinesOpt,
    progress: bool = ProgressOpt,
) -> None:
    """Linear probe on frozen features (SGD 0.9, cosine lr scaled by batch/256)."""
    from dino_core.eval.run import run_linear_eval

    _check_which(which)
    result = _guarded(
        lambda: run_linear_eval(
            checkpoint, which=which, data=_data(data, root, split, eval_split, limit),
            out_dir=out, device=device, n_last_blocks=n_last_blocks,
            avgpool_patchtokens=avgpool, epochs=epochs, lr=lr,
            probe_batch_size=probe_batch_size, seed=seed, batch_size=batch_size,
            baselines=baselines, progress=progress,
        )
    )  # fmt: skip
    s = result["settings"]
    console.print(_header(result), highlight=False)
    table = Table(title=f"linear probe, {s['epochs']} epochs, last {s['n_last_blocks']} blocks")
    for col in ("model", "best top-1", "(epoch)", "final top-1", "final top-5", "dim"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, rep in result["results"].items():
        table.add_row(
            name,
            f"{rep['best_top1']:.2f}",
            str(rep["best_epoch"]),
            f"{rep['final_top1']:.2f}",
            f"{rep['final_top5']:.2f}",
            str(rep["feature_dim"]),
        )
    console.print(table)
    _footer(result)


@app.command("attention")
def attention_command(
    checkpoint: str = CheckpointArg,
    data: str | None = DataOpt,
    root: str | None = RootOpt,
    split: str | None = SplitOpt,
    eval_split: str | None = EvalSplitOpt,
    limit: int | None = LimitOpt,
    out: Path | None = OutOpt,
    which: str = WhichOpt,
    device: str = DeviceOpt,
    threshold: float | None = typer.Option(
        None, "--threshold", min=0.0, max=1.0, help="attention mass kept (paper 0.6)"
    ),
    images: int = typer.Option(8, "--images", min=1, help="test images in the figures"),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="images per forward pass"),
    baselines: bool = BaselinesOpt,
    progress: bool = ProgressOpt,
) -> None:
    """Attention-map figures and, on synthetic data, the attention-mask IoU."""
    from dino_core.eval.run import run_attention_eval

    _check_which(which)
    result = _guarded(
        lambda: run_attention_eval(
            checkpoint, which=which, data=_data(data, root, split, eval_split, limit),
            out_dir=out, device=device, threshold=threshold, num_images=images,
            batch_size=batch_size, baselines=baselines, progress=progress,
        )
    )  # fmt: skip
    th = result["settings"]["threshold"]
    console.print(_header(result), highlight=False)
    if "not_applicable" in result:
        console.print(f"no attention: {result['not_applicable']}", highlight=False)
    elif result["settings"]["has_masks"]:
        table = Table(title=f"attention-mask IoU, masks keep {th:.0%} of the attention mass")
        scores = [rep["mask_score"] for rep in result["results"].values()]
        backgrounds = sorted({bg for sc in scores for bg in sc["by_background"]})
        cols = ["model", "head", "IoU", "precision", "recall", "IoU mean map", "on object"]
        for col in [*cols, "chance", *backgrounds]:
            table.add_column(col, justify="left" if col == "model" else "right")
        for name, sc in zip(result["results"], scores, strict=True):
            bg = sc["by_background"]
            table.add_row(
                name,
                str(sc["best_head"]),
                f"{sc['best_head_iou']:.3f}",
                f"{sc['best_head_precision']:.3f}",
                f"{sc['best_head_recall']:.3f}",
                f"{sc['mean_map_iou']:.3f}",
                f"{sc['max_object_share']:.3f}",
                f"{sc['object_area']:.3f}",
                *(f"{bg[b]['best_head_iou']:.3f}" if b in bg else "-" for b in backgrounds),
            )
        console.print(table)
        console.print(
            "head: the best head (highest IoU); precision / recall: of its masks against the "
            "object; on object: the attention mass on object pixels of the most object-bound "
            "head (no threshold), against chance (a uniform map's share)"
            + (
                f"; {', '.join(backgrounds)}: IoU of the best head per background"
                if backgrounds
                else ""
            ),
            highlight=False,
        )
    else:
        console.print(
            f"no object masks in {result['dataset']!r}: figures only "
            "(synthetic, mnist and fashion_mnist carry object masks for the attention-mask score)",
            highlight=False,
        )
    _footer(result)
