"""Errors as ``application/problem+json`` (RFC 9457): type, title, status, detail, errors.

Every error the api returns goes through here: our own :class:`ApiProblem`, FastAPI's request
validation (422), Starlette's HTTP errors (404, 405 …), the orchestrator's service errors and
anything unexpected (500, without internals). ``errors`` names each offending field by its
path from the top of the request (``body.config.loss.teacher_temp``, ``query.limit``).
A 405 names in ``Allow`` every method of the path; ``OPTIONS`` on a path that exists is
answered 204 with that ``Allow`` header (no token needed: routing precedes authentication).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.server.methods import allowed_methods
from dino_core.config import ConfigError
from orchestrator.errors import (
    ConflictError,
    FieldError,
    IdempotencyConflictError,
    IllegalTransitionError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    StaleStateError,
    clean_message,
    summarise,
)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:dino:problem:"
log = logging.getLogger(__name__)


class Problem(BaseModel):
    """RFC 9457 problem details, plus ``errors`` naming each invalid field."""

    type: str = Field("about:blank", description="URI reference naming the problem type")
    title: str
    status: int
    detail: str
    errors: list[FieldError] = Field(default_factory=list)


class ApiProblem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        errors: Iterable[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(
            type=f"{TYPE_PREFIX}{kind}" if kind else "about:blank",
            title=title or HTTPStatus(status).phrase,
            status=status,
            detail=detail,
            errors=list(errors),
        )
        self.headers = dict(headers or {})


def validation_problem(errors: Sequence[FieldError], detail: str | None = None) -> ApiProblem:
    """A 422 listing ``errors``; the detail repeats them in one line for humans."""
    return ApiProblem(
        422,
        detail or f"the request is invalid: {summarise(errors)}",
        kind="validation-error",
        title="Request validation failed",
        errors=errors,
    )


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json"),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def loc_to_field(loc: Sequence[Any]) -> str:
    """``("body", "config", "loss", "teacher_temp")`` -> ``body.config.loss.teacher_temp``."""
    return ".".join(str(p) for p in loc) or "body"


def _from_validation(err: RequestValidationError) -> ApiProblem:
    errors = []
    for e in err.errors():
        kind = str(e.get("type", "value_error"))
        msg = clean_message(str(e.get("msg", "invalid value")))
        if kind == "extra_forbidden":
            msg = "unknown field (check the spelling; see the API docs at /docs)"
        errors.append(FieldError(field=loc_to_field(e.get("loc", ())), message=msg, type=kind))
    return validation_problem(errors)


_SERVICE_ERRORS: list[tuple[type[Exception], int, str]] = [
    (NotFoundError, 404, "not-found"),
    (PermissionDeniedError, 403, "forbidden"),
    (IdempotencyConflictError, 409, "idempotency-key-reused"),
    (IllegalTransitionError, 409, "illegal-transition"),
    (StaleStateError, 409, "concurrent-change"),
    (ConflictError, 409, "conflict"),
]


def _service_problem(exc: Exception) -> ApiProblem:
    if isinstance(exc, InvalidRequestError):  # its paths start at the top of the body
        return validation_problem(
            [e.model_copy(update={"field": f"body.{e.field}"}) for e in exc.errors]
        )
    if isinstance(exc, ConfigError):
        return validation_problem([FieldError(field="body.config", message=str(exc))], str(exc))
    for cls, status, kind in _SERVICE_ERRORS:
        if isinstance(exc, cls):
            errors = []
            if cls is IdempotencyConflictError:
                errors = [FieldError(field="header.idempotency-key", message=str(exc))]
            return ApiProblem(status, str(exc), kind=kind, errors=errors)
    raise TypeError(f"no HTTP mapping for {type(exc).__name__}")


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error of ``app`` to a problem+json response."""

    async def on_problem(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem_response(exc.problem, exc.headers)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": headers["Allow"]})
        phrase = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) else phrase
        errors = []
        if exc.status_code == 400:  # FastAPI could not read the body at all
            errors = [FieldError(field="body", message=detail, type="body_unreadable")]
        problem = Problem(
            type="about:blank", title=phrase, status=exc.status_code, detail=detail, errors=errors
        )
        return problem_response(problem, headers)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        p = _from_validation(exc)
        return problem_response(p.problem)

    async def on_service(_request: Request, exc: Exception) -> JSONResponse:
        p = _service_problem(exc)
        return problem_response(p.problem, p.headers)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        problem = Problem(
            type=f"{TYPE_PREFIX}internal-error",
            title="Internal Server Error",
            status=500,
            detail="the server failed on this request; the error is in the server log",
        )
        return problem_response(problem)

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    mapped: list[type[Exception]] = [InvalidRequestError, ConfigError]
    mapped += [c for c, _, _ in _SERVICE_ERRORS]
    for cls in mapped:
        app.add_exception_handler(cls, on_service)
    app.add_exception_handler(Exception, on_crash)
