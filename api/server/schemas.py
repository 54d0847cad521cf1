"""Request and response bodies of the HTTP API (pydantic v2, ``extra="forbid"``).

Requests are the orchestrator's :class:`JobRequest`/:class:`GridRequest` with the limits an
open network endpoint needs (string and list lengths, bounded numbers, finite floats); config
dicts, evaluation options and paths are checked by :mod:`orchestrator.service.submit_check`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, field_validator

from orchestrator.schemas import (
    DEFAULT_EVALS,
    AttemptView,
    EventView,
    GridRequest,
    GridRow,
    GridView,
    JobRequest,
    JobView,
)
from worker.contracts import EvalKind, GridStatus, Resources

MAX_AXES = 8
MAX_AXIS_VALUES = 32
MAX_OVERRIDE_SETS = 64
MAX_OVERRIDES = 64
MAX_TAGS = 32
MAX_EVAL_OPTIONS = 16
MAX_SEEDS = 32
PRIORITY_LIMIT = 1_000_000

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=200)]
TagValue = Annotated[str, StringConstraints(max_length=500)]
Override = Annotated[str, StringConstraints(min_length=3, max_length=1000)]
PathText = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
EvalOptions = Annotated[dict[Key, Any], Field(max_length=MAX_EVAL_OPTIONS)]

TINY_CONFIG_EXAMPLE: dict[str, Any] = {
    "model": {"arch": "vit_custom", "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2},
    "head": {"out_dim": 64},
    "crops": {"global_size": 16, "local_size": 8, "local_number": 2},
    "loss": {"warmup_teacher_temp_epochs": 0},
    "optim": {"warmup_epochs": 0},
    "data": {"dataset": "synthetic", "synthetic_size": 64},
    "train": {"epochs": 1, "batch_size": 16},
}


class ResourceRequest(Resources):
    """What one job asks Ray for (bounded: a typo must not ask for a million CPUs)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    num_cpus: float = Field(1.0, ge=0, le=1024)
    num_gpus: float = Field(0.0, ge=0, le=64)
    num_workers: int = Field(1, ge=1, le=256, description="Ray Train workers (DDP ranks)")
    custom: dict[Key, Annotated[float, Field(ge=0, le=1e6)]] = Field(
        default_factory=dict, max_length=16, description="custom Ray resources"
    )


def _resources() -> ResourceRequest:
    return ResourceRequest.model_validate({})


def _unique_evals(evals: list[EvalKind]) -> list[EvalKind]:
    repeated = sorted({e for e in evals if evals.count(e) > 1})
    if repeated:
        raise ValueError(f"evaluations {repeated} are listed twice: name each kind once")
    return evals


class JobSubmission(JobRequest):
    """``POST /v1/jobs``: one pretraining job (plus the evaluations to run after it) or one
    evaluation of an existing checkpoint."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"name": "tiny", "config": TINY_CONFIG_EXAMPLE}]},
    )

    name: Name | None = None
    config: dict[Key, Any] = Field(
        default_factory=dict, description="partial DinoConfig: missing fields take defaults"
    )
    overrides: dict[Key, Any] | list[Override] = Field(
        default_factory=dict, max_length=MAX_OVERRIDES, description="dotted field -> value"
    )
    resources: ResourceRequest = Field(default_factory=_resources)
    priority: int = Field(0, ge=-PRIORITY_LIMIT, le=PRIORITY_LIMIT, description="higher first")
    source_checkpoint: PathText | None = Field(None, description="eval kinds: checkpoint")
    eval_options: EvalOptions = Field(default_factory=dict, description="eval kinds only")
    evals: list[EvalKind] = Field(default_factory=list, max_length=3)
    evals_options: dict[EvalKind, EvalOptions] = Field(
        default_factory=dict, description="options of each follow-up eval kind"
    )
    tags: dict[Key, TagValue] = Field(default_factory=dict, max_length=MAX_TAGS)
    experiment_name: Annotated[str, StringConstraints(min_length=1, max_length=250)] = "dino"

    _evals_once = field_validator("evals")(_unique_evals)


class GridSubmission(GridRequest):
    """``POST /v1/grids``: base config x axes (cartesian) x override sets, plus evaluations."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "name": "temp-x-crops",
                    "base_config": TINY_CONFIG_EXAMPLE,
                    "axes": {"loss.teacher_temp": [0.04, 0.07], "crops.local_number": [2, 4]},
                    "evals": ["eval_knn"],
                }
            ]
        },
    )

    name: Name
    base_config: dict[Key, Any] = Field(default_factory=dict, description="partial DinoConfig")
    axes: dict[Key, Annotated[list[Any], Field(min_length=1, max_length=MAX_AXIS_VALUES)]] = Field(
        default_factory=dict, max_length=MAX_AXES, description="dotted field -> values"
    )
    overrides: list[dict[Key, Any] | Annotated[list[Override], Field(max_length=MAX_OVERRIDES)]] = (
        Field(default_factory=list, max_length=MAX_OVERRIDE_SETS, description="override sets")
    )
    seeds: (
        Annotated[
            list[Annotated[StrictInt, Field(ge=-(2**63), lt=2**63)]], Field(max_length=MAX_SEEDS)
        ]
        | None
    ) = Field(None, description="run every combination once per train.seed; None = once")
    evals: list[EvalKind] = Field(default_factory=lambda: list(DEFAULT_EVALS), max_length=3)
    resources: ResourceRequest = Field(default_factory=_resources)
    eval_resources: ResourceRequest | None = None
    priority: int = Field(0, ge=-PRIORITY_LIMIT, le=PRIORITY_LIMIT)
    eval_options: dict[EvalKind, EvalOptions] = Field(
        default_factory=dict, description="options of each eval kind (worker.evaluate)"
    )
    tags: dict[Key, TagValue] = Field(default_factory=dict, max_length=MAX_TAGS)

    _evals_once = field_validator("evals")(_unique_evals)


class Progress(BaseModel):
    step: int | None
    total_steps: int | None
    epoch: int | None
    fraction: float | None = Field(description="step / total_steps, None before the first")


class JobDetail(JobView):
    """A job with its attempts, recent events, progress and links."""

    attempts: list[AttemptView]
    events: list[EventView]
    progress: Progress
    mlflow_run_url: str | None


class JobSummary(BaseModel):
    """A row of ``GET /v1/jobs``."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: str
    status: str
    status_reason: str
    owner_id: str
    grid_id: str | None
    combination: int | None
    axis_values: dict[str, Any]
    attempt: int
    created_at: datetime
    step: int | None
    total_steps: int | None
    metrics: dict[str, Any]
    result_metrics: dict[str, Any]
    checkpoint_uri: str | None
    mlflow_run_id: str | None
    collapsed: bool


class Page(BaseModel):
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page; None on the last")


class JobPage(Page):
    items: list[JobSummary]


class GridPage(Page):
    items: list[GridView]


class GridSummary(BaseModel):
    """The ablation table of a grid: one row per combination (mean, std and n over its
    seeds), one per run, and the baselines; ``rule`` says how the marks are decided."""

    grid_id: str
    name: str
    status: GridStatus
    seeds: list[int] = Field(description="each combination runs once per seed; [] = once")
    rule: str = Field(description="how mean ± std and the '<m>_vs_best' marks are computed")
    columns: list[str] = Field(description="column order of ``table`` (and of the CSV)")
    table: list[dict[str, Any]] = Field(
        description="per combination: axis values, status, <m> (mean), <m>_std, <m>_n, "
        "<m>_p and <m>_vs_best for the scores"
    )
    run_columns: list[str] = Field(description="column order of ``run_table``")
    run_table: list[dict[str, Any]] = Field(description="per pretraining run (seed)")
    baseline_columns: list[str] = Field(description="column order of ``baselines``")
    baselines: list[dict[str, Any]] = Field(
        description="k-NN of random init (over the seeds) and raw pixels, per architecture"
    )
    rows: list[GridRow] = Field(description="the full runs, with every metric and eval job")


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
    version: str
