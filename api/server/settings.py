"""Settings of the job API, read from ``DINO_*`` environment variables.

``DINO_DATASET_ROOTS`` (``os.pathsep``-separated) lists the directories a config's
``data.root`` may point into; by default ``DINO_DATA_DIR``, ``/usr/share/datasets`` and the
repository's ``shared/data`` (:func:`worker.deployment.dataset_roots`, which the orchestrator
hands every job so the worker checks the same roots where it opens the data). Limits
(``DINO_API_MAX_BODY_BYTES`` …) bound what one request may ask for, so a client cannot make
the server expand or store unbounded work; ``gpu_memory_gb`` / ``worker_memory_gb`` are what
a job's training must fit. ``DINO_PUBLIC_DOCS`` (``true``/``false``) says whether ``/docs``,
``/redoc`` and ``/openapi.json`` answer without a token (:mod:`api.server.docs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.grid_expand import DEFAULT_MAX_COMBINATIONS, MAX_COMBINATIONS_CEILING
from worker.deployment import dataset_roots

DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"
PUBLIC_DOCS = "DINO_PUBLIC_DOCS"


class ApiSettings(BaseModel):
    """What the api process needs; ``from_env`` reads ``DINO_API_<FIELD>`` variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_roots: list[str] = Field(default_factory=dataset_roots)
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger bodies get 413")
    max_grid_combinations: int = Field(
        DEFAULT_MAX_COMBINATIONS,
        ge=1,
        le=MAX_COMBINATIONS_CEILING,
        description="per submitted grid: the one cap (the CLI asks the server's dry run)",
    )
    gpu_memory_gb: float = Field(
        256.0,
        gt=0,
        description="memory of one accelerator: a job asking for GPUs whose training cannot "
        "fit it is refused at submit (default: the largest single accelerator sold in 2025, "
        "AMD MI325X, 256 GB; set your GPUs' size, e.g. 80)",
    )
    worker_memory_gb: float | None = Field(
        None,
        gt=0,
        description="memory of one CPU-only worker; None = the largest node in the "
        "orchestrator's cluster report (not checked while there is none)",
    )
    mlflow_ui_url: str = Field(DEFAULT_MLFLOW_UI_URL, description="base of MLflow run links")
    events_per_job: int = Field(200, ge=1, le=1000, description="events shown in job detail")
    public_docs: bool = Field(
        True,
        description="/docs, /redoc, /openapi.json without a token (DINO_PUBLIC_DOCS); "
        "the schema is the open-source code's, the deploy files turn this off",
    )

    @classmethod
    def from_env(cls, **overrides: Any) -> ApiSettings:
        """Fields from ``DINO_API_*`` (``DINO_MLFLOW_UI_URL`` and ``DINO_PUBLIC_DOCS`` also
        work), then ``overrides``."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            if name == "dataset_roots":
                continue
            raw = os.environ.get(f"DINO_API_{name.upper()}")
            if raw:
                values[name] = raw
        for name, var in (("mlflow_ui_url", "DINO_MLFLOW_UI_URL"), ("public_docs", PUBLIC_DOCS)):
            raw = os.environ.get(var)
            if raw and name not in values:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def resolved_dataset_roots(self) -> list[Path]:
        """The roots with symlinks and ``..`` resolved (what paths are compared against)."""
        return [Path(r).expanduser().resolve() for r in self.dataset_roots]
