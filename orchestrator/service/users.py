"""Users and their hashed bearer tokens (the api generates tokens and hashes them here)."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.db import Database
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.models import User, new_id, utcnow
from orchestrator.schemas import Role, UserView

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def hash_token(token: str) -> str:
    """sha256 hex digest of a bearer token: what the users table stores."""
    return hashlib.sha256(token.encode()).hexdigest()


def _check_hash(token_hash: str) -> None:
    if not _HEX64.match(token_hash):
        raise ValueError("token_hash must be a sha256 hex digest (64 lowercase hex digits)")


def create_user(db: Database, name: str, token_hash: str, role: Role = "user") -> UserView:
    """Store a user; :class:`ConflictError` when the name (or token) already exists."""
    _check_hash(token_hash)
    if role not in ("user", "admin"):
        raise ValueError(f"role {role!r} must be 'user' or 'admin'")
    if not name.strip():
        raise ValueError("user name must not be empty")
    user = User(id=new_id("usr"), name=name, role=role, token_hash=token_hash, created_at=utcnow())
    try:
        with db.session() as s:
            s.add(user)
    except IntegrityError:
        raise ConflictError(f"a user named {name!r} (or with that token) already exists") from None
    return UserView.model_validate(user)


def get_user_by_token_hash(db: Database, token_hash: str) -> UserView | None:
    """The user whose token hashes to ``token_hash``, or None."""
    with db.session() as s:
        user = s.scalars(select(User).where(User.token_hash == token_hash)).first()
        return None if user is None else UserView.model_validate(user)


def get_user(db: Database, user_id: str) -> UserView:
    with db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFoundError(f"no user {user_id!r}")
        return UserView.model_validate(user)


def get_user_by_name(db: Database, name: str) -> UserView | None:
    with db.session() as s:
        user = s.scalars(select(User).where(User.name == name)).first()
        return None if user is None else UserView.model_validate(user)


def list_users(db: Database) -> list[UserView]:
    with db.session() as s:
        return [UserView.model_validate(u) for u in s.scalars(select(User).order_by(User.name))]


def rotate_token(db: Database, user_id: str, token_hash: str) -> UserView:
    """Replace a user's token hash (the old token stops working at once)."""
    _check_hash(token_hash)
    try:
        with db.session() as s:
            res = s.execute(update(User).where(User.id == user_id).values(token_hash=token_hash))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                raise NotFoundError(f"no user {user_id!r}")
    except IntegrityError:
        raise ConflictError(
            "that token hash belongs to another user: generate a new token"
        ) from None
    return get_user(db, user_id)
