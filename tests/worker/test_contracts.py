"""The contracts between worker and orchestrator: one definition per name, typed events."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.contracts import (
    ABANDONED,
    GRID_FINISHED,
    LOST,
    MLFLOW_KILLED,
    STATES,
    CheckpointSaved,
    Collapsed,
    JobResult,
    PollReply,
    Progress,
    Started,
    Warned,
    WorkerEvent,
    event_from_json,
    event_to_json,
)

REPO = Path(__file__).resolve().parents[2]
# Where a status name may be written as a string: its one definition, the schema's history,
# and dino_core's own run-end names (dino_core imports nothing of the worker).
ALLOWED = ("worker/contracts/", "orchestrator/migrations/", "dino_core/callbacks.py")
NAMES = {*STATES, LOST, ABANDONED, GRID_FINISHED, MLFLOW_KILLED, "STOPPED"}

EVENTS: list[WorkerEvent] = [
    Started(mlflow_run_id="r1", attempt=2),
    Started(mlflow_run_id=None, attempt=1),
    Progress(step=3, epoch=0, total_steps=8, metrics={"loss": 4.1}),
    CheckpointSaved(uri="/j/checkpoints/checkpoint-00000004.pt", step=4),
    Collapsed(kind="uniform", step=7, evidence={"ln_k": 4.16}),
    Warned(message="MLflow unreachable; retrying"),
]


def _status_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES
    ]


def test_status_names_are_written_only_in_the_contracts() -> None:
    found = []
    for package in ("api", "worker", "orchestrator", "dino_core", "benchmarks"):
        for path in sorted((REPO / package).rglob("*.py")):
            if not str(path.relative_to(REPO)).startswith(ALLOWED):
                found += _status_literals(path)
    assert found == [], "import the name from worker.contracts instead:\n" + "\n".join(found)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.event)
def test_every_event_survives_its_json_form(event: WorkerEvent) -> None:
    data = event_to_json(event)
    assert data["event"] == event.event
    assert event_from_json(data) == event
    assert type(event_from_json(data)) is type(event)


def test_a_malformed_event_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="step"):
        event_from_json({"event": "progress", "epoch": 0, "total_steps": 8})
    with pytest.raises(ValidationError, match="'started', 'progress'"):
        event_from_json({"event": "finished"})
    with pytest.raises(ValidationError, match="extra"):
        event_from_json({"event": "warning", "message": "m", "level": "high"})


def test_the_poll_reply_crosses_a_process_boundary() -> None:
    reply = PollReply(
        events=EVENTS,
        cursor=len(EVENTS),
        done=True,
        result=JobResult(job_id="j", status="SUCCEEDED", metrics={"loss": 1.0}),
        pid=123,
        node_id="n1",
    )
    assert pickle.loads(pickle.dumps(reply)) == reply
    assert PollReply.model_validate_json(reply.model_dump_json()) == reply
