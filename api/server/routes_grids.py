"""``/v1/grids``: submit (or dry-run) ablation grids, read them, their summary table (JSON,
CSV, PNG). The service layer checks each request once; errors map to problem+json."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Response

from api.server.auth import CurrentUser
from api.server.deps import (
    AUTH_ERRORS,
    CONFLICT,
    ID_MAX,
    NOT_FOUND,
    Db,
    FixedNodes,
    IdempotencyKey,
    Limit,
    Memory,
    Offset,
    Paths,
    problem,
)
from api.server.deps import Settings as SettingsDep
from api.server.problems import ApiProblem
from api.server.schemas import CancelRequest, GridPage, GridSubmission, GridSummary
from orchestrator import service
from orchestrator.ablation import grid_results, to_csv
from orchestrator.ablation.figure import to_png
from orchestrator.schemas import GridExtension, GridPlanView, GridView

router = APIRouter(prefix="/v1/grids", tags=["grids"])
GridId = Annotated[str, Path(min_length=1, max_length=ID_MAX, description="grid id")]
Format = Literal["json", "csv", "png"]
View = Literal["combinations", "runs", "baselines"]
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
    nodes: FixedNodes,
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
        plan = service.plan_grid(
            body, max_combinations=cap, paths=paths, memory=memory, cluster=nodes
        )
        return Response(plan.model_dump_json(), media_type="application/json")
    grid, again = service.submit_grid_with_replay(
        db,
        user,
        body,
        idempotency_key=idempotency_key,
        max_combinations=cap,
        paths=paths,
        memory=memory,
        cluster=nodes,
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
    "/{grid_id}/extend",
    response_model=GridView,
    responses={**AUTH_ERRORS, **NOT_FOUND, **CONFLICT},
    summary="Add axis values or seeds to a grid; only the new runs are queued",
)
def extend_grid(
    grid_id: GridId,
    body: GridExtension,
    user: CurrentUser,
    db: Db,
    settings: SettingsDep,
    paths: Paths,
    memory: Memory,
) -> GridView:
    """More values of the grid's axes and/or more seeds: the new combinations and seeds run
    (reusing any SUCCEEDED run with the same identity), existing runs are kept, and the
    summary covers all. 409 for another base config, a new axis, a value or seed already
    there; 422 for an invalid new value. Nothing is stored on error."""
    cap = settings.max_grid_combinations
    return service.extend_grid(
        db, user, grid_id, body, max_combinations=cap, paths=paths, memory=memory
    )


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
    view: Annotated[
        View, Query(description="CSV: one row per combination (mean, std, n), run or baseline")
    ] = "combinations",
    accept: Annotated[str | None, Header(max_length=1000)] = None,
) -> GridSummary | Response:
    """One row per combination: axis values, status, mean ± std and n over its seeds of the
    final loss, teacher entropy, k-NN top-1 (from the eval_knn jobs), its baselines (random
    init, raw pixels: the grid's baselines job) and gain, linear and attention scores, and
    which scores fall below the best combination's by more than the seed spread (``rule``).
    ``?format=png``: the summary figure (each score against each axis, error bars from the
    seeds, baselines as lines; a heat map for two axes)."""
    grid = service.get_grid(db, user, grid_id)
    kind = negotiate(format, accept)
    results = grid_results(grid.name, service.grid_summary(db, user, grid_id))
    if kind == "png":
        return Response(to_png(results), media_type="image/png")
    if kind == "csv":
        columns, table = {
            "combinations": (results.columns, results.table),
            "runs": (results.run_columns, results.run_table),
            "baselines": (results.baseline_columns, results.baselines),
        }[view]
        suffix = "" if view == "combinations" else f"-{view}"
        headers = {"Content-Disposition": f'attachment; filename="{grid.id}{suffix}.csv"'}
        return Response(to_csv(columns, table), media_type="text/csv", headers=headers)
    return GridSummary(
        grid_id=grid.id,
        name=grid.name,
        status=grid.status,
        seeds=grid.seeds,
        rule=results.rule,
        columns=results.columns,
        table=results.table,
        run_columns=results.run_columns,
        run_table=results.run_table,
        baseline_columns=results.baseline_columns,
        baselines=results.baselines,
        rows=results.rows,
    )
