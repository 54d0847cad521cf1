"""Errors of the orchestrator's service layer; the api maps each class to one HTTP status."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from dino_core.config import ConfigError

SHOWN_ERRORS = 5


class OrchestratorError(Exception):
    """Base class: the message says what was wrong and what to do."""


class NotFoundError(OrchestratorError):
    """The object does not exist or is not visible to the caller (HTTP 404)."""


class PermissionDeniedError(OrchestratorError):
    """The caller may see the object but not do this to it (HTTP 403)."""


class ConflictError(OrchestratorError):
    """The request clashes with stored state, e.g. a duplicate user name (HTTP 409)."""


class IdempotencyConflictError(ConflictError):
    """An idempotency key was reused for a different request (HTTP 422 or 409)."""


class FieldError(BaseModel):
    """One offending field of a request: its path and what is wrong (and what to do)."""

    field: str = Field(description="e.g. body.config.loss.teacher_temp, query.limit")
    message: str
    type: str = "value_error"


def clean_message(msg: str) -> str:
    """pydantic's message without its ``Value error, `` prefix."""
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def summarise(errors: Sequence[FieldError]) -> str:
    """``field: message; …`` for the first :data:`SHOWN_ERRORS` errors (and how many more)."""
    shown = "; ".join(f"{e.field}: {e.message}" for e in errors[:SHOWN_ERRORS])
    more = len(errors) - SHOWN_ERRORS
    return shown + (f" (and {more} more)" if more > 0 else "")


class InvalidRequestError(OrchestratorError):
    """A request that cannot be queued; ``errors`` names every offending field (HTTP 422).
    Nothing was stored."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__(summarise(self.errors))


class GridValidationError(InvalidRequestError):
    """A grid that cannot be expanded: names each combination and field (HTTP 422)."""


class JobValidationError(InvalidRequestError, ConfigError):
    """A job whose config, options or paths are invalid (a :class:`ConfigError` too)."""


class IllegalTransitionError(OrchestratorError):
    """A job state change the state machine does not allow (names from and to)."""

    def __init__(self, job_id: str, from_status: str, to_status: str) -> None:
        self.job_id = job_id
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(
            f"job {job_id}: illegal transition {from_status} -> {to_status}; "
            f"allowed from {from_status}: {_allowed(from_status)}"
        )


class StaleStateError(OrchestratorError):
    """The job changed underneath a conditional update (another process moved it first)."""


def _allowed(status: str) -> str:
    from orchestrator.states import ALLOWED

    targets = sorted(ALLOWED.get(status, ()))
    return ", ".join(targets) if targets else "nothing (terminal state)"
