"""Bearer tokens: generated here, stored hashed (sha256) by the orchestrator's users service.

A token is ``dino_`` + 43 URL-safe characters (256 random bits); only its hash is stored, so
it is shown once when created. Every route except ``/healthz`` depends on
:func:`current_user`: no or unknown token -> 401 with ``WWW-Authenticate: Bearer``; admin-only
routes on :func:`admin_user` (a plain user's token -> 403).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.server.problems import ApiProblem
from orchestrator.db import Database
from orchestrator.schemas import Role, UserView
from orchestrator.service import (
    create_user,
    get_user_by_name,
    get_user_by_token_hash,
    hash_token,
    rotate_token,
)

TOKEN_PREFIX = "dino_"
REALM = "dino"
_bearer = HTTPBearer(auto_error=False, description="a token from `dino token create USER`")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def issue_token(db: Database, name: str, role: Role = "user", *, rotate: bool = False) -> str:
    """Create user ``name`` (or, with ``rotate``, replace its token) and return the token."""
    token = new_token()
    existing = get_user_by_name(db, name)
    if existing is not None and rotate:
        rotate_token(db, existing.id, hash_token(token))
    else:
        create_user(db, name, hash_token(token), role)
    return token


def _unauthorized(detail: str, error: str | None = None) -> ApiProblem:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return ApiProblem(
        401,
        detail,
        kind="unauthorized",
        headers={"WWW-Authenticate": challenge},
    )


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserView:
    """The caller, from ``Authorization: Bearer <token>``."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized(
            "this route needs a bearer token: send 'Authorization: Bearer <token>' "
            "(create one with `dino token create USER`)"
        )
    token = credentials.credentials.strip()
    if not token or len(token) > 512:
        raise _unauthorized("the bearer token is malformed", "invalid_token")
    db: Database = request.app.state.db
    user = get_user_by_token_hash(db, hash_token(token))
    if user is None:
        raise _unauthorized(
            "the bearer token is not valid (unknown or rotated): create a new one with "
            "`dino token create USER --rotate`",
            "invalid_token",
        )
    return user


CurrentUser = Annotated[UserView, Depends(current_user)]


def admin_user(user: CurrentUser) -> UserView:
    """The caller, if an admin; a plain user gets 403 (the route exists, it is not theirs)."""
    if user.role != "admin":
        raise ApiProblem(
            403,
            f"this route is for admins and {user.name!r} is a plain user: ask an admin, or "
            "use an admin token (`dino token create NAME --admin`)",
            kind="forbidden",
        )
    return user


AdminUser = Annotated[UserView, Depends(admin_user)]
