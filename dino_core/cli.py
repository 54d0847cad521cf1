"""``dino train CONFIG [--set k=v ...] [--output DIR]``: one run from a YAML preset.

The command is mounted on the ``dino`` app by ``api/cli/main.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from dino_core.callbacks import RUN_STOPPED, RUN_SUCCEEDED, Callback
from dino_core.config import ConfigError, DinoConfig, load_config


def train_command(
    config: Path = typer.Argument(..., help="YAML config (see configs/)"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. loss.teacher_temp=0.05"),
    output: Path = typer.Option(None, "--output", "-o", help="run directory (resumes from it)"),
    no_resume: bool = typer.Option(False, "--no-resume", help="ignore existing checkpoints"),
) -> None:
    """Train DINO; resumes automatically from OUTPUT's latest checkpoint."""
    from dino_core.progress import ProgressBar
    from dino_core.train import train

    try:
        cfg = load_config(config, list(set_))
    except ConfigError as err:
        typer.secho(str(err), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    out = output or Path("runs") / f"{config.stem}-{cfg.config_hash()}"
    typer.echo(f"run directory: {out}  (config hash {cfg.config_hash()})")
    callbacks = [ProgressBar(cfg.train.max_steps), *_knn_callbacks(cfg)]
    result = train(cfg, str(out), callbacks, resume=not no_resume)
    summary: dict[str, Any] = {
        "status": result.status,
        "step": result.step,
        "epoch": result.epoch,
        "checkpoint": result.checkpoint,
        **{k: round(v, 5) for k, v in result.metrics.items()},
    }
    if result.collapse:
        summary["collapse"] = result.collapse
    if result.error:
        summary["error"] = result.error
    typer.echo(json.dumps(summary, indent=2))
    if result.status not in (RUN_SUCCEEDED, RUN_STOPPED):
        raise typer.Exit(1)


def _knn_callbacks(cfg: DinoConfig) -> list[Callback]:
    """Epoch-level k-NN monitor when ``eval.knn_every_epochs`` > 0."""
    if cfg.eval.knn_every_epochs <= 0:
        return []
    from dino_core.eval.monitor import KnnMonitor

    return [KnnMonitor(cfg)]
