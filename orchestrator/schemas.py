"""Typed requests into and views out of the service layer (pydantic, JSON-ready for the api)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from orchestrator.early_stopping import EarlyStopping
from worker.contracts import PRETRAIN, EvalKind, GridStatus, RequestKind, Resources

Role = Literal["user", "admin"]
DEFAULT_EVALS: tuple[EvalKind, ...] = ("eval_knn", "eval_attention")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _View(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class JobRequest(_Request):
    """One job. ``config`` is a (partial) DinoConfig dict; ``overrides`` dotted fields on top."""

    name: str | None = Field(None, max_length=200)
    kind: RequestKind = PRETRAIN
    config: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[str, Any] | list[str] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=lambda: Resources.model_validate({}))
    priority: int = Field(0, description="higher runs first; FIFO within a priority")
    max_attempts: int = Field(3, ge=1, le=50, description="failed attempts before FAILED")
    source_job: str | None = Field(
        None,
        max_length=64,
        description="eval kinds: the id of one of your pretraining jobs; its last checkpoint "
        "is scored (a job still queued or running: its final one, once it succeeds)",
    )
    source_checkpoint: str | None = Field(
        None, description="eval kinds: a checkpoint file inside one of your jobs' directories"
    )
    eval_options: dict[str, Any] = Field(default_factory=dict, description="eval kinds only")
    evals: list[EvalKind] = Field(default_factory=list, description="run after it succeeds")
    evals_options: dict[EvalKind, dict[str, Any]] = Field(
        default_factory=dict, description="options of each follow-up eval kind"
    )
    tags: dict[str, str] = Field(default_factory=dict)
    experiment_name: str = Field("dino", min_length=1, max_length=250)
    reuse: bool = Field(
        True,
        description="a SUCCEEDED job of yours with the same config, options, source and code "
        "version gives its results (checkpoint, metrics, MLflow run); false = run it",
    )

    @model_validator(mode="after")
    def _consistent(self) -> JobRequest:
        sources = [n for n in ("source_job", "source_checkpoint") if getattr(self, n)]
        if self.kind != "pretrain" and len(sources) != 1:
            raise ValueError(
                f"kind={self.kind} needs exactly one of source_job (one of your pretraining "
                "jobs) or source_checkpoint (a checkpoint in one of your jobs' directories)"
            )
        if self.kind == "pretrain" and sources:
            raise ValueError(f"{sources[0]} belongs to eval kinds: a pretrain job scores none")
        if self.kind != "pretrain" and self.evals:
            raise ValueError("evals can follow a pretrain job only: leave evals empty")
        if self.kind == "pretrain" and self.eval_options:
            raise ValueError("eval_options belong to eval jobs: use evals_options per eval kind")
        _check_options_keys(self.evals, self.evals_options, "evals_options")
        return self


def _check_options_keys(evals: list[EvalKind], options: dict[EvalKind, Any], name: str) -> None:
    extra = sorted(set(options) - set(evals))
    if extra:
        raise ValueError(f"{name} has options for {extra}, which are not in evals {evals}")


class GridRequest(_Request):
    """An ablation grid: every combination becomes a pretrain job plus its eval jobs."""

    name: str = Field(..., min_length=1, max_length=200)
    base_config: dict[str, Any] = Field(default_factory=dict)
    axes: dict[str, list[Any]] = Field(default_factory=dict, description="dotted field -> values")
    overrides: list[dict[str, Any] | list[str]] = Field(
        default_factory=list, description="explicit override sets, crossed with the axes"
    )
    seeds: list[StrictInt] | None = Field(
        None,
        description="run every combination once per seed (train.seed); the summary reports "
        "mean, std and n over them. None = once, at the config's train.seed",
    )
    evals: list[EvalKind] = Field(default_factory=lambda: list(DEFAULT_EVALS))
    resources: Resources = Field(default_factory=lambda: Resources.model_validate({}))
    eval_resources: Resources | None = Field(None, description="None = one worker of resources")
    priority: int = 0
    max_attempts: int = Field(3, ge=1, le=50)
    eval_options: dict[EvalKind, dict[str, Any]] = Field(
        default_factory=dict, description="options of each eval kind (worker.evaluate)"
    )
    tags: dict[str, str] = Field(default_factory=dict)
    early_stopping: EarlyStopping | None = Field(
        None,
        description="successive halving at rung epochs (orchestrator.early_stopping); "
        "None = every run trains to its last epoch",
    )
    reuse: bool = Field(
        True,
        description="a run whose config, options and code version match one of your "
        "SUCCEEDED jobs reuses its checkpoint and evaluations; false = run everything",
    )

    @model_validator(mode="after")
    def _consistent(self) -> GridRequest:
        _check_options_keys(self.evals, self.eval_options, "eval_options")
        return self


class GridExtension(_Request):
    """``POST /v1/grids/{id}/extend``: more values of the grid's axes and/or more seeds."""

    base_config: dict[str, Any] | None = Field(
        None, description="optional: must equal the grid's (an extension keeps it)"
    )
    axes: dict[str, list[Any]] = Field(
        default_factory=dict, description="dotted field -> values to add to that axis"
    )
    seeds: list[StrictInt] = Field(default_factory=list, description="seeds to add")


class UserView(_View):
    id: str
    name: str
    role: Role
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class JobView(_View):
    id: str
    name: str
    kind: str
    status: str
    status_reason: str
    owner_id: str
    grid_id: str | None
    depends_on: str | None
    combination: int | None
    axis_values: dict[str, Any]
    priority: int
    attempt: int
    failed_attempts: int
    max_attempts: int
    not_before: datetime | None
    cancel_requested: bool
    created_at: datetime
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    step: int | None
    epoch: int | None
    total_steps: int | None
    metrics: dict[str, Any]
    result_metrics: dict[str, Any]
    checkpoint_uri: str | None
    source_checkpoint: str | None
    storage_uri: str
    mlflow_run_id: str | None
    mlflow_experiment: str
    collapsed: bool
    collapse_kind: str | None
    error: str | None
    config_hash: str
    config: dict[str, Any]
    resources: Resources
    until_epoch: int | None = Field(
        None, description="early stopping: the epoch the next or running attempt trains to"
    )
    reused_from: str | None = Field(
        None, description="the SUCCEEDED job whose checkpoint and results this one reuses"
    )


class EventView(_View):
    id: int
    job_id: str | None
    grid_id: str | None
    attempt: int | None
    at: datetime
    kind: str
    from_status: str | None
    to_status: str | None
    reason: str
    data: dict[str, Any]


class AttemptView(_View):
    number: int
    status: str
    actor_name: str
    orchestrator_id: str
    queued_at: datetime
    claimed_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    mlflow_run_id: str | None
    error: str | None


class GridView(_View):
    """A grid; ``jobs`` is filled by get_grid/submit_grid and empty in list_grids."""

    id: str
    name: str
    owner_id: str
    status: GridStatus
    counts: dict[str, int]
    created_at: datetime
    finished_at: datetime | None
    axes: dict[str, Any]
    overrides: list[Any]
    seeds: list[int] = Field(description="each combination runs once per seed; [] = once")
    early_stopping: dict[str, Any] | None = Field(
        None, description="the grid's early_stopping field as stored; None = off"
    )
    evals: list[str]
    n_combinations: int
    mlflow_experiment: str
    mlflow_parent_run_id: str | None
    jobs: list[JobView] = Field(default_factory=list)


class CombinationView(_View):
    """One combination of a checked grid (a dry run): what its pretraining job would run."""

    index: int
    label: str
    values: dict[str, Any] = Field(description="the axis and override values that define it")
    config_hash: str
    config: dict[str, Any] = Field(description="the full resolved DinoConfig")


class GridPlanView(_View):
    """``POST /v1/grids?dry_run=true``: what the grid would queue; nothing is stored."""

    name: str
    n_combinations: int
    seeds: list[int] = Field(description="each combination runs once per seed; [] = once")
    n_runs: int = Field(description="pretraining jobs: combinations x seeds")
    n_baseline_jobs: int = Field(description="k-NN baselines, once per architecture and data")
    n_jobs: int = Field(description="pretraining jobs, their evaluations, the baseline jobs")
    evals: list[str]
    combinations: list[CombinationView]


class EvalCell(_View):
    job_id: str
    status: str
    metrics: dict[str, Any]
    options: dict[str, Any] = Field(default_factory=dict, description="its eval_options")


class GridRow(_View):
    """One pretraining run of a grid summary: a combination at one seed."""

    combination: int
    seed: int = Field(description="train.seed of this run")
    job_id: str
    axis_values: dict[str, Any]
    status: str
    metrics: dict[str, Any]
    evals: dict[str, EvalCell]
    baseline: EvalCell | None = Field(
        None, description="the grid's k-NN baselines job for this architecture and data"
    )
    collapsed: bool
    collapse_kind: str | None
    mlflow_run_id: str | None
    step: int | None
    total_steps: int | None
    knn_k: int = Field(description="eval.knn_k of the combination's config (paper 20)")
    stopped_at_epoch: int | None = Field(
        None, description="STOPPED_EARLY: the rung epoch that stopped the combination"
    )
    stop_metric: str | None = Field(None, description="the metric that decided it")
    stop_value: float | None = Field(None, description="its seed mean at that rung")
    reused_from: str | None = Field(
        None, description="the SUCCEEDED job whose checkpoint and results this run reuses"
    )


class IdempotencyRecord(_View):
    key: str
    kind: Literal["job", "grid"]
    object_id: str
    created_at: datetime


class LatencyStats(_View):
    """Claim time minus queue time of every attempt (seconds), Prometheus-histogram ready."""

    count: int
    sum_s: float
    p50_s: float | None
    p95_s: float | None
    buckets: dict[str, int] = Field(description="upper bound (s) -> cumulative count, '+Inf'")


class QueueStats(_View):
    queue_length: int = Field(description="QUEUED jobs that may start now")
    waiting_dependencies: int = Field(description="QUEUED eval jobs whose pretraining is pending")
    backing_off: int = Field(description="QUEUED retries still inside their back-off")
    jobs_by_state: dict[str, int]
    scheduling_latency: LatencyStats


class OrchestratorView(_View):
    id: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    alive: bool
    ray_address: str


class ClusterInfo(_View):
    """The Ray cluster as last reported by a live orchestrator's heartbeat."""

    orchestrators: list[OrchestratorView]
    resources_total: dict[str, float]
    resources_available: dict[str, float]
    nodes: list[dict[str, Any]]
    reported_at: datetime | None
    fixed_size: bool = Field(False, description="no node will join (no autoscaling)")
