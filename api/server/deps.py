"""Dependencies shared by the routes: the database, the settings, idempotency keys, paging."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.dependencies.models import Dependant

from api.server.problems import PROBLEM_JSON, FieldError, Problem, validation_problem
from api.server.settings import ApiSettings
from orchestrator import service
from orchestrator.capacity import Bundle
from orchestrator.db import Database
from orchestrator.schemas import ClusterInfo
from orchestrator.service import MemoryPolicy, PathPolicy
from worker.deployment import jobs_root

MAX_OFFSET = 1_000_000
NODE_MEMORY_TTL_S = 10.0
ID_MAX = 64


def _query_names(dependant: Dependant) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def no_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is an error (``?stauts=QUEUED`` must not
    silently list every job)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    unknown = sorted(set(request.query_params) - _query_names(dependant))
    if unknown:
        raise validation_problem(
            [
                FieldError(field=f"query.{name}", message="unknown query parameter", type="extra")
                for name in unknown
            ]
        )


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def get_path_policy(request: Request) -> PathPolicy:
    """Where this server lets a request's paths point (dataset roots, job storage)."""
    roots = get_settings(request).resolved_dataset_roots()
    return PathPolicy(tuple(roots), jobs_root())


def _cluster(request: Request) -> ClusterInfo:
    """The cluster report, read at most every few seconds while there is one (heartbeats
    refresh it every 2 s; submissions should not each read it)."""
    state = request.app.state
    now = time.monotonic()
    cached: tuple[float, ClusterInfo] | None = getattr(state, "cluster", None)
    if cached is None or now - cached[0] > NODE_MEMORY_TTL_S or cached[1].reported_at is None:
        cached = (now, service.cluster_info(get_db(request)))
        state.cluster = cached
    return cached[1]


def get_memory_policy(request: Request) -> MemoryPolicy:
    """How much memory one worker of a job can have (one accelerator, one CPU worker)."""
    settings = get_settings(request)
    gib = float(2**30)
    cpu = settings.worker_memory_gb
    host = cpu * gib if cpu is not None else service.largest_node_memory(_cluster(request).nodes)
    return MemoryPolicy(settings.gpu_memory_gb * gib, host)


def get_fixed_nodes(request: Request) -> list[Bundle] | None:
    """Each node's resources when the cluster cannot grow (a job none holds is refused)."""
    info = _cluster(request)
    return service.fixed_cluster_nodes(info.nodes, info.fixed_size)


Db = Annotated[Database, Depends(get_db)]
Settings = Annotated[ApiSettings, Depends(get_settings)]
Paths = Annotated[PathPolicy, Depends(get_path_policy)]
Memory = Annotated[MemoryPolicy, Depends(get_memory_policy)]
FixedNodes = Annotated[list[Bundle] | None, Depends(get_fixed_nodes)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="retrying a POST with the same key returns the first result, never a copy",
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
ObjectId = Annotated[str, "a job or grid id"]


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI response entry documented as a problem+json body."""
    return {
        "description": description,
        "model": Problem,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: problem("the request body could not be read (not UTF-8 JSON)"),
    401: problem("no or invalid bearer token"),
    413: problem("request body larger than the server's limit"),
    422: problem("invalid request: `errors` names each field"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: problem("no such object visible to the caller"),
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: problem("conflicts with the stored state (e.g. idempotency key reused)"),
}
