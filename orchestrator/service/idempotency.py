"""Idempotency keys: a retried submit with the same (user, key) returns the first object.

The unique constraint on (user_id, key) decides races: of two concurrent submits only one
insert commits; the other rolls back its job/grid rows and returns the winner's object.
Which of them replayed is known only here, after the insert (a look-up before it races), so
:func:`run_idempotent` says so in its result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db import Database
from orchestrator.errors import IdempotencyConflictError
from orchestrator.models import IdempotencyKey, utcnow
from orchestrator.schemas import IdempotencyRecord, UserView

Kind = Literal["job", "grid"]
MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class Created:
    """The id a submit answers with; ``replayed``: an earlier request with the key made it."""

    object_id: str
    replayed: bool = False


def lookup_idempotency(db: Database, user: UserView, key: str) -> IdempotencyRecord | None:
    """What ``user`` created with ``key``, if anything."""
    with db.session() as s:
        row = _row(s, user.id, key)
        return None if row is None else IdempotencyRecord.model_validate(row)


def _row(session: Session, user_id: str, key: str) -> IdempotencyKey | None:
    stmt = select(IdempotencyKey).where(
        IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
    )
    return session.scalars(stmt).first()


def _existing(session: Session, user_id: str, key: str, kind: Kind, digest: str) -> str | None:
    row = _row(session, user_id, key)
    if row is None:
        return None
    if row.kind != kind or row.request_hash != digest:
        raise IdempotencyConflictError(
            f"idempotency key {key!r} was already used for a different {row.kind} request "
            f"({row.object_id}): use a new key for a new request"
        )
    return row.object_id


def run_idempotent(
    db: Database,
    user: UserView,
    key: str | None,
    kind: Kind,
    digest: str,
    create: Callable[[Session], str],
) -> Created:
    """Run ``create`` (which returns the new object's id) at most once per (user, key)."""
    if key is None:
        with db.session() as s:
            return Created(create(s))
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"idempotency key must have 1 to {MAX_KEY_LENGTH} characters")
    try:
        with db.session() as s:
            found = _existing(s, user.id, key, kind, digest)
            if found is not None:
                return Created(found, replayed=True)
            object_id = create(s)
            s.add(
                IdempotencyKey(
                    user_id=user.id,
                    key=key,
                    kind=kind,
                    object_id=object_id,
                    request_hash=digest,
                    created_at=utcnow(),
                )
            )
            s.flush()
        return Created(object_id)
    except IntegrityError:  # a concurrent request with the key committed first: its object
        with db.session() as s:
            found = _existing(s, user.id, key, kind, digest)
        if found is None:
            raise
        return Created(found, replayed=True)
