"""Settings of one orchestrator process, read from ``DINO_*`` environment variables.

Every field can be set as ``DINO_ORCH_<FIELD>`` (e.g. ``DINO_ORCH_POLL_INTERVAL_S=0.1``);
left unset, the database and the MLflow store are the deployment's (:mod:`worker.deployment`)
and the Ray address is ``RAY_ADDRESS``.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from worker.deployment import dataset_roots, default_tracking_uri

PRODUCTION_JOB_FN = "worker.run:run_job"
DEFAULT_NAMESPACE = "dino"
DEFAULT_LEASE_S = 20.0  # also what a heartbeat without its own lease_s is judged by


class OrchestratorSettings(BaseModel):
    """How the scheduling loop runs; the defaults suit one machine with the embedded stores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str | None = Field(None, description="None = DINO_DATABASE_URL or SQLite")
    ray_address: str | None = Field(None, description="None = RAY_ADDRESS or a local Ray")
    namespace: str = Field(DEFAULT_NAMESPACE, description="Ray namespace of the job actors")
    num_cpus: int | None = Field(None, ge=1, description="local Ray only; None = all cores")
    num_gpus: int | None = Field(None, ge=0, description="local Ray only; None = detected")
    job_fn: str = Field(PRODUCTION_JOB_FN, description="'module:function' each attempt runs")
    poll_interval_s: float = Field(0.25, gt=0, description="longest sleep between loop passes")
    actor_wait_s: float = Field(1.0, gt=0, description="long-poll wait inside a job actor")
    heartbeat_s: float = Field(2.0, gt=0, description="orchestrator heartbeat period")
    lease_s: float = Field(
        DEFAULT_LEASE_S, gt=0, description="no heartbeat this long = orchestrator dead"
    )
    cancel_grace_s: float = Field(15.0, ge=0, description="cooperative cancel before ray.kill")
    backoff_base_s: float = Field(10.0, ge=0, description="retry delay after the 1st failure")
    backoff_max_s: float = Field(600.0, ge=0, description="retry delay cap")
    max_node_losses: int = Field(
        10,
        ge=0,
        description="lost nodes per job that do not count against its max_attempts "
        "(a job that keeps taking its node down then does)",
    )
    warm_actor_idle_s: float = Field(
        20.0,
        ge=0,
        description="keep the actor of an attempt that succeeded (or paused) this long for the "
        "next job of the same resource shape, whose start then skips a new Ray worker process "
        "and the torch/timm/MLflow imports (~8 s); 0 = a new process for every attempt",
    )
    claim_batch: int = Field(32, ge=1, description="queued jobs examined per pass")
    mlflow_tracking_uri: str | None = Field(
        None, description="None = the deployment's (MLFLOW_TRACKING_URI)"
    )
    mlflow_setup: bool = Field(
        True, description="create jobs' MLflow experiments and each grid's parent run"
    )
    autoscaling: bool | None = Field(
        None,
        description="can nodes join the Ray cluster (autoscaler, workers added by hand)? "
        "None = no for a local Ray, yes for RAY_ADDRESS; no = a job no node can hold is "
        "refused at submit",
    )
    dataset_roots: list[str] = Field(
        default_factory=dataset_roots,
        description="where jobs may read data (DINO_DATASET_ROOTS, as the api checks it)",
    )

    @classmethod
    def from_env(cls, **overrides: Any) -> OrchestratorSettings:
        """Fields from ``DINO_ORCH_*`` variables, then ``overrides`` on top."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            if name == "dataset_roots":  # DINO_DATASET_ROOTS, shared with the api
                continue
            raw = os.environ.get(f"DINO_ORCH_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def resolved_ray_address(self) -> str | None:
        return self.ray_address or os.environ.get("RAY_ADDRESS") or None

    def fixed_cluster(self) -> bool:
        """True when no node will ever join (what the heartbeat tells the api as
        ``fixed_size``): a job that fits no node now never will."""
        if self.autoscaling is not None:
            return not self.autoscaling
        return self.resolved_ray_address() is None

    def resolved_tracking_uri(self) -> str:
        """The MLflow store every job of this orchestrator logs to."""
        return self.mlflow_tracking_uri or default_tracking_uri()

    def actor_idle_exit_s(self) -> float:
        """When a kept actor ends its own process: long after this orchestrator would have
        reused or killed it, so only the actors of a dead orchestrator get there."""
        if self.warm_actor_idle_s <= 0:
            return 0.0
        return self.warm_actor_idle_s + 3 * self.lease_s + 60.0

    def backoff_s(self, failed_attempts: int) -> float:
        """Delay before the retry that follows the ``failed_attempts``-th failure (doubling)."""
        if failed_attempts < 1:
            return 0.0
        return float(min(self.backoff_base_s * 2 ** (failed_attempts - 1), self.backoff_max_s))
