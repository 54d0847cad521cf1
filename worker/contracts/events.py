"""What a running job tells the orchestrator: typed events, discriminated by ``event``.

In order of appearance: :class:`Started` (once the MLflow run exists), :class:`Progress`
every log interval, :class:`CheckpointSaved`, :class:`Collapsed`, :class:`Warned`. They
cross process boundaries (Ray actors, the database's event log) as JSON objects:
:func:`event_to_json` writes one, :func:`event_from_json` reads it back. Cancellation is the
other direction: a :data:`CancelFn` the job polls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Started(_Event):
    """The attempt runs and its MLflow run exists (None: the job function keeps none)."""

    event: Literal["started"] = "started"
    mlflow_run_id: str | None
    attempt: int = Field(ge=1)


class Progress(_Event):
    """The latest step's metrics (finite values only)."""

    event: Literal["progress"] = "progress"
    step: int = Field(ge=0)
    epoch: int = Field(ge=0)
    total_steps: int = Field(ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)


class CheckpointSaved(_Event):
    """A checkpoint that a later attempt can resume from."""

    event: Literal["checkpoint"] = "checkpoint"
    uri: str
    step: int = Field(ge=0)


class Collapsed(_Event):
    """The collapse detector fired (``kind``: ``uniform`` or ``one_hot``, paper Sec. 5.3)."""

    event: Literal["collapse"] = "collapse"
    kind: str
    step: int = Field(ge=0)
    evidence: dict[str, float] = Field(default_factory=dict)


class Warned(_Event):
    """Something the job survived but a person should see (e.g. MLflow unreachable)."""

    event: Literal["warning"] = "warning"
    message: str


WorkerEvent = Annotated[
    Started | Progress | CheckpointSaved | Collapsed | Warned, Field(discriminator="event")
]
ProgressFn = Callable[[WorkerEvent], None]
CancelFn = Callable[[], bool]
_ADAPTER: TypeAdapter[WorkerEvent] = TypeAdapter(WorkerEvent)


def event_to_json(event: WorkerEvent) -> dict[str, Any]:
    """The JSON object of ``event`` (its ``event`` key names the kind)."""
    return event.model_dump(mode="json")


def event_from_json(data: Mapping[str, Any]) -> WorkerEvent:
    """Parse a JSON object written by :func:`event_to_json` (ValidationError if malformed)."""
    return _ADAPTER.validate_python(data)
