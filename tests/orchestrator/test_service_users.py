"""Users and bearer-token hashes."""

from __future__ import annotations

import hashlib

import pytest

from orchestrator.db import Database
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.service import (
    create_user,
    get_user,
    get_user_by_name,
    get_user_by_token_hash,
    hash_token,
    list_users,
    rotate_token,
)


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    assert len(hash_token("x")) == 64


def test_create_and_look_up_by_token_hash(db: Database) -> None:
    ann = create_user(db, "ann", hash_token("secret-1"), role="admin")
    assert ann.role == "admin" and ann.is_admin and ann.id.startswith("usr-")
    assert get_user_by_token_hash(db, hash_token("secret-1")) == ann
    assert get_user_by_token_hash(db, hash_token("secret-2")) is None
    assert get_user(db, ann.id) == ann
    assert get_user_by_name(db, "ann") == ann
    assert get_user_by_name(db, "nobody") is None


def test_duplicate_names_and_tokens_conflict(db: Database) -> None:
    create_user(db, "ann", hash_token("t1"))
    with pytest.raises(ConflictError, match="'ann'"):
        create_user(db, "ann", hash_token("t2"))
    with pytest.raises(ConflictError):
        create_user(db, "ben", hash_token("t1"))
    assert [u.name for u in list_users(db)] == ["ann"]


def test_bad_input_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="sha256 hex digest"):
        create_user(db, "ann", "plain-token")
    with pytest.raises(ValueError, match="role 'root'"):
        create_user(db, "ann", hash_token("t"), role="root")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        get_user(db, "usr-missing")


def test_rotate_token_replaces_the_old_one(db: Database) -> None:
    ann = create_user(db, "ann", hash_token("old"))
    ben = create_user(db, "ben", hash_token("bens"))
    rotate_token(db, ann.id, hash_token("new"))
    assert get_user_by_token_hash(db, hash_token("old")) is None
    assert get_user_by_token_hash(db, hash_token("new")) == ann
    with pytest.raises(ConflictError):
        rotate_token(db, ann.id, hash_token("bens"))
    assert get_user_by_token_hash(db, hash_token("bens")) == ben
    with pytest.raises(NotFoundError):
        rotate_token(db, "usr-missing", hash_token("z"))
