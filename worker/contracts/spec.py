"""What the orchestrator hands the worker (``JobSpec``) and what it gets back (``JobResult``).

Both are plain pydantic models so they cross Ray process boundaries and database columns as
JSON. The worker never imports the orchestrator: progress goes out through a callable.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from worker.contracts.status import PRETRAIN, AttemptEnd, FailureKind, JobKind

# What places an actor on Ray's head node: a sliver of the head's marker resource
# (ray._common.constants.HEAD_NODE_RESOURCE_NAME; Ray Train places its state actor the same way).
HEAD_NODE: Final[dict[str, float]] = {"node:__internal_head__": 0.001}


class Resources(BaseModel):
    """What one job asks Ray for."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    num_workers: int = Field(1, ge=1, description="Ray Train workers (DDP ranks)")
    custom: dict[str, float] = Field(default_factory=dict, description="custom Ray resources")


class MlflowTarget(BaseModel):
    """Where the job's MLflow run lives."""

    model_config = ConfigDict(extra="forbid")

    tracking_uri: str | None = None  # None = embedded sqlite store under the data dir
    experiment_name: str = "dino"
    parent_run_id: str | None = None  # grid's parent run
    run_id: str | None = None  # set after the first attempt: later attempts continue it


class JobSpec(BaseModel):
    """One pretraining or evaluation run."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    kind: JobKind = PRETRAIN
    config: dict[str, Any]  # resolved DinoConfig (DinoConfig.to_dict())
    resources: Resources = Field(default_factory=Resources)
    storage_uri: str  # job directory: checkpoints, outputs (local path or fsspec URI)
    mlflow: MlflowTarget = Field(default_factory=MlflowTarget)
    attempt: int = Field(1, ge=1)
    grid_id: str | None = None
    source_checkpoint: str | None = None  # eval jobs: the pretraining checkpoint to score
    eval_options: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    until_epoch: int | None = Field(
        None,
        ge=1,
        description="pretrain only: train to the end of this epoch, then end PAUSED with the "
        "epoch's metrics (a rung of the grid's early stopping); None = to the last epoch",
    )
    data_roots: list[str] | None = Field(
        None,
        description="directories the job may read data sets from, checked again where the "
        "data is opened (symlinks resolved); None = not confined (direct library use)",
    )


class JobResult(BaseModel):
    """How a job ended."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    status: AttemptEnd
    metrics: dict[str, float] = Field(default_factory=dict)
    checkpoint_uri: str | None = None
    mlflow_run_id: str | None = None
    error: str | None = None
    failure: FailureKind | None = Field(
        None, description="FAILED only: why (decides the retry); None = unclassified, retried"
    )
    detail: dict[str, Any] = Field(default_factory=dict)
