"""``/v1/grids``: submit (or dry-run) ablation grids, read them, their summary table (JSON,
CSV, PNG). The service layer checks each request once; errors map to problem+json."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Response

from api.auth import CurrentUser
from api.deps import (
    AUTH_ERRORS,
    CONFLICT,
    ID_MAX,
    NOT_FOUND,
    Db,
    IdempotencyKey,
    Limit,
    Memory,
    Offset,
    Paths,
    problem,
)
from api.deps import Settings as SettingsDep
from api.problems import ApiProblem
from api.routes_jobs import replayed
from api.schemas import CancelRequest, GridPage, GridSubmission, GridSummary
from api.summary import flat_table, to_csv, to_png
from orchestrator import service
from orchestrator.schemas import GridPlanView, GridView

router = APIRouter(prefix="/v1/grids", tags=["grids"])
GridId = Annotated[str, Path(min_length=1, max_length=ID_MAX, description="grid id")]
Format = Literal["json", "csv", "png"]
MEDIA: dict[str, str] = {"json": "application/json", "csv": "text/csv", "png": "image/png"}


@router.post(
    "",
    status_code=201,
    response_model=GridView,
    responses={
        **AUTH_ERRORS,
        **CONFLICT,
        200: {"model": GridPlanView, "description": "dry run: what would be queued"},
    },
    summary="Submit an ablation grid (or check it: ?dry_run=true)",
)
def submit_grid(
    body: GridSubmission,
    user: CurrentUser,
    db: Db,
    settings: SettingsDep,
    paths: Paths,
    memory: Memory,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    dry_run: Annotated[bool, Query(description="check only: 200 with the combinations")] = False,
) -> GridView | Response:
    """Every combination of ``axes`` (cartesian, crossed with ``overrides``) over
    ``base_config`` becomes a pretraining job plus one job per evaluation in ``evals``.
    All combinations are validated before anything is stored; with ``dry_run=true`` the
    combinations and the job count come back and nothing is stored."""
    cap = settings.max_grid_combinations
    if dry_run:
        plan = service.plan_grid(body, max_combinations=cap, paths=paths, memory=memory)
        return Response(plan.model_dump_json(), media_type="application/json")
    again = replayed(db, user, idempotency_key, "grid")
    grid = service.submit_grid(
        db,
        user,
        body,
        idempotency_key=idempotency_key,
        max_combinations=cap,
        paths=paths,
        memory=memory,
    )
    response.headers["Location"] = f"/v1/grids/{grid.id}"
    if again:
        response.headers["Idempotent-Replayed"] = "true"
    return grid


@router.get("", response_model=GridPage, responses=AUTH_ERRORS, summary="List grids")
def list_grids(user: CurrentUser, db: Db, limit: Limit = 100, offset: Offset = 0) -> GridPage:
    """Newest first, with job counts by state."""
    items = service.list_grids(db, user, limit=limit, offset=offset)
    more = offset + limit if len(items) == limit else None
    return GridPage(items=items, limit=limit, offset=offset, next_offset=more)


@router.get(
    "/{grid_id}",
    response_model=GridView,
    responses={**AUTH_ERRORS, **NOT_FOUND},
    summary="A grid with all its jobs",
)
def get_grid(grid_id: GridId, user: CurrentUser, db: Db) -> GridView:
    return service.get_grid(db, user, grid_id)


@router.post(
    "/{grid_id}/cancel",
    response_model=GridView,
    responses={**AUTH_ERRORS, **NOT_FOUND, **CONFLICT},
    summary="Cancel every job of a grid that has not ended",
)
def cancel_grid(
    grid_id: GridId,
    user: CurrentUser,
    db: Db,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> GridView:
    return service.cancel_grid(db, user, grid_id, body.reason if body is not None else None)


def negotiate(fmt: Format | None, accept: str | None) -> Format:
    """``?format=`` wins; else the first of csv/png/json the Accept header names; else json."""
    if fmt is not None:
        return fmt
    wanted = [part.split(";")[0].strip().lower() for part in (accept or "").split(",")]
    for media in wanted:
        for name, value in MEDIA.items():
            if media == value:
                return name  # type: ignore[return-value]
    if not accept or any(m in ("*/*", "application/*", "") for m in wanted):
        return "json"
    raise ApiProblem(
        406,
        f"cannot answer in {accept!r}: ask for application/json, text/csv or image/png "
        "(Accept header or ?format=json|csv|png)",
        kind="not-acceptable",
    )


@router.get(
    "/{grid_id}/summary",
    response_model=GridSummary,
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        200: {
            "description": "the ablation table",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        406: problem("the Accept header names no format offered"),
    },
    summary="The ablation table of a grid (JSON, CSV or PNG)",
)
def grid_summary(
    grid_id: GridId,
    user: CurrentUser,
    db: Db,
    format: Annotated[Format | None, Query(description="overrides the Accept header")] = None,
    accept: Annotated[str | None, Header(max_length=1000)] = None,
) -> GridSummary | Response:
    """One row per combination: axis values, status, final loss, k-NN top-1 (from the
    eval_knn job), linear and attention scores, collapse. ``?format=png`` plots the final
    k-NN per combination."""
    grid = service.get_grid(db, user, grid_id)
    rows = service.grid_summary(db, user, grid_id)
    kind = negotiate(format, accept)
    if kind == "png":
        return Response(to_png(grid.name, rows), media_type="image/png")
    columns, table = flat_table(rows)
    if kind == "csv":
        headers = {"Content-Disposition": f'attachment; filename="{grid.id}.csv"'}
        return Response(to_csv(columns, table), media_type="text/csv", headers=headers)
    return GridSummary(
        grid_id=grid.id,
        name=grid.name,
        status=grid.status,
        columns=columns,
        table=table,
        rows=rows,
    )
