"""Which failures the worker calls retryable (``worker.failure``), and the JobResult it
reports for a run that cannot even start."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import BaseModel, ValidationError

from dino_core.config import ConfigError
from dino_core.data import DataNotFoundError
from dino_core.data.roots import DataRootError
from worker.contracts import RETRIED_FAILURES, JobSpec
from worker.failure import failure_kind
from worker.run import run_job


def _validation_error() -> ValidationError:
    class M(BaseModel):
        x: int

    try:
        M.model_validate({"x": "no"})
    except ValidationError as err:
        return err
    raise AssertionError("unreachable")


def _raised_from(err: BaseException, cause: BaseException) -> BaseException:
    try:
        raise err from cause
    except BaseException as chained:
        return chained


@pytest.mark.parametrize(
    ("err", "progressed", "kind"),
    [
        (ConfigError("model.arch: unknown"), False, "config"),
        (_validation_error(), True, "config"),
        (DataNotFoundError("no images under /data/x"), False, "data"),
        (DataRootError("data.root left the roots"), True, "data"),
        (FileNotFoundError("checkpoint.pt"), False, "data"),
        (torch.OutOfMemoryError("CUDA out of memory"), False, "infrastructure"),
        (MemoryError(), False, "infrastructure"),
        (ConnectionError("storage went away"), False, "infrastructure"),
        (ValueError("a bug"), False, "code"),
        (RuntimeError("a bug"), True, "runtime"),
        (_raised_from(RuntimeError("rank 0 failed"), ConfigError("x")), True, "config"),
    ],
)
def test_failure_kinds(err: BaseException, progressed: bool, kind: str) -> None:
    assert failure_kind(err, otherwise="runtime" if progressed else "code") == kind


def test_only_infrastructure_and_runtime_failures_are_retried() -> None:
    assert {"infrastructure", "runtime"} == RETRIED_FAILURES


def test_a_config_the_worker_cannot_load_is_a_config_failure(tmp_path: Path) -> None:
    spec = JobSpec(job_id="job-x", config={"loss": {"teacher_temp": -1}}, storage_uri=str(tmp_path))
    result = run_job(spec)
    assert result.status == "FAILED" and result.failure == "config"
    assert "loss.teacher_temp" in (result.error or "")
