"""Evaluation jobs (``eval_knn`` / ``eval_linear`` / ``eval_attention``) of one checkpoint,
and a grid's ``baselines`` job (k-NN of raw pixels and random init of the job's config).

Runs :mod:`dino_core.eval.run` on ``spec.source_checkpoint`` (a ``baselines`` job:
:mod:`dino_core.eval.baseline_run` on the config) with ``spec.eval_options`` as
keyword arguments (``data`` may be a dict of :class:`DataOverrides` fields), writing its
report under ``<storage_uri>/eval/<kind>`` (for remote storage: written to a temporary
directory, then uploaded there), then records it in the job's MLflow run: the report header
and settings as params, flat metrics, the JSON report and figures as artifacts, and
attention figures also as images (``log_image``) so the UI shows them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import ValidationError

from dino_core.config import ConfigError, DinoConfig
from dino_core.data.roots import confined_to
from dino_core.eval.baseline_run import run_knn_baselines
from dino_core.eval.options import EVAL_OPTIONS, option_problems
from dino_core.eval.run import DataOverrides, run_attention_eval, run_knn_eval, run_linear_eval
from dino_core.storage import is_remote, join, upload_tree
from worker.attempt import finish_session, open_session
from worker.contracts import (
    BASELINES,
    CANCELLED,
    SUCCEEDED,
    CancelFn,
    JobResult,
    JobSpec,
    ProgressFn,
)
from worker.mlflow_run import RunTarget
from worker.outcome import failed
from worker.progress import finite
from worker.tracking_session import TrackingSession

RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "eval_knn": run_knn_eval,
    "eval_linear": run_linear_eval,
    "eval_attention": run_attention_eval,
}


def eval_kwargs(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """``spec.eval_options`` as the runner's keyword arguments, checked by its typed options
    (:mod:`dino_core.eval.options`, the same check the service layer makes at submit)."""
    model = EVAL_OPTIONS[kind.removeprefix("eval_")]
    try:
        kwargs = model.model_validate(options).model_dump(exclude_unset=True)
    except ValidationError as err:
        found = "; ".join(f"{path!r}: {msg}" for path, msg, _ in option_problems(kind, err))
        raise ConfigError(f"spec.eval_options of {kind}: {found}") from None
    if isinstance(kwargs.get("data"), dict):
        kwargs["data"] = DataOverrides(**kwargs["data"])
    return kwargs


def _record(session: TrackingSession, result: dict[str, Any], out_dir: Path) -> None:
    session.log_metrics(finite(result.get("metrics", {})), 0)
    for path in sorted(out_dir.rglob("*")):
        if path.is_file():
            rel = path.parent.relative_to(out_dir)
            session.log_artifact(str(path), "eval" if str(rel) == "." else f"eval/{rel}")
            if path.suffix == ".png" and path.stem.startswith("attention"):
                image = np.asarray(Image.open(path).convert("RGB"))
                session.log_image(path.stem, image, step=0)


Score = Callable[..., dict[str, Any]]  # called with out_dir=


def _runner(spec: JobSpec, config: DinoConfig) -> tuple[Score, str | None]:
    """What scores this job (given its output directory), and the checkpoint it scores."""
    kwargs = eval_kwargs(spec.kind, spec.eval_options)
    if spec.kind == BASELINES:
        return partial(run_knn_baselines, config, **kwargs), None
    checkpoint = spec.source_checkpoint
    if not checkpoint:
        raise ValueError(f"{spec.kind} job {spec.job_id} has no source_checkpoint to evaluate")
    return partial(RUNNERS[spec.kind], checkpoint, **kwargs), checkpoint


def evaluate_job(
    spec: JobSpec,
    config: DinoConfig,
    target: RunTarget,
    emit: ProgressFn,
    should_cancel: CancelFn | None,
) -> JobResult:
    """Score ``spec.source_checkpoint`` (a ``baselines`` job: ``config``'s k-NN baselines);
    the result's metrics are the runner's flat metrics."""
    try:
        score, checkpoint = _runner(spec, config)
    except ValueError as err:
        return failed(spec.job_id, err, spec.mlflow.run_id)
    session = open_session(spec, target, emit)
    session.log_params({f"eval_options.{k}": v for k, v in spec.eval_options.items()})
    if should_cancel is not None and should_cancel():
        result = JobResult(job_id=spec.job_id, status=CANCELLED, mlflow_run_id=session.run_id)
        finish_session(session, result)
        return result
    local = not is_remote(spec.storage_uri)
    try:
        with (
            (
                nullcontext(str(Path(spec.storage_uri) / "eval" / spec.kind))
                if local
                else tempfile.TemporaryDirectory(prefix=f"dino-{spec.kind}-")
            ) as out,
            confined_to(spec.data_roots),
        ):
            out_dir = Path(out)
            report = score(out_dir=out_dir)
            header = {k: v for k, v in report.items() if isinstance(v, str | int | float)}
            settings = report.get("settings", {})
            session.log_params({f"eval.{k}": v for k, v in {**header, **settings}.items()})
            _record(session, report, out_dir)
            if not local:
                upload_tree(str(out_dir), join(spec.storage_uri, "eval", spec.kind))
                session.flush(300.0)  # artifacts are read from the temporary directory
        result = JobResult(
            job_id=spec.job_id,
            status=SUCCEEDED,
            metrics=finite(report.get("metrics", {})),
            checkpoint_uri=checkpoint,
            mlflow_run_id=session.run_id,
            detail={k: report[k] for k in ("kind", "settings", "n_train", "n_test") if k in report},
        )
    except Exception as err:
        result = failed(spec.job_id, err, session.run_id)
    finish_session(session, result)
    return result
