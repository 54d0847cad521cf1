"""Errors of the orchestrator's service layer; the api maps each class to one HTTP status."""

from __future__ import annotations


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


class GridValidationError(OrchestratorError):
    """A grid cannot be expanded: names the combination and field (HTTP 422)."""


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
