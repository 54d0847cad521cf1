"""Health, Prometheus metrics, the cluster view and the caller's identity."""

from __future__ import annotations

from importlib import metadata

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.server.auth import CurrentUser
from api.server.deps import AUTH_ERRORS, Db, problem
from api.server.problems import ApiProblem
from api.server.prometheus import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, render
from api.server.schemas import Health
from orchestrator import service
from orchestrator.schemas import OrchestratorView, QueueStats, UserView

router = APIRouter(tags=["system"])


def version() -> str:
    try:
        return metadata.version("dino-orchestrator")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class ClusterView(BaseModel):
    """The Ray cluster (from the freshest orchestrator heartbeat) and the job queue."""

    orchestrators: list[OrchestratorView]
    nodes: list[dict[str, object]]
    resources_total: dict[str, float]
    resources_available: dict[str, float]
    resources_used: dict[str, float] = Field(description="total - available, per resource")
    reported_at: str | None
    queue: QueueStats


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: problem("the database cannot be reached")},
    summary="Liveness and database check (no token needed)",
)
def healthz(db: Db) -> Health:
    try:
        with db.session() as s:
            s.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        detail = f"the job database cannot be reached: {err}"
        raise ApiProblem(503, detail, kind="db-down") from None
    return Health(status="ok", database="ok", version=version())


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        **AUTH_ERRORS,
        200: {
            "description": "Prometheus text format 0.0.4, or OpenMetrics 1.0 when the Accept "
            "header asks for application/openmetrics-text",
            "content": {TEXT_CONTENT_TYPE: {}, OPENMETRICS_CONTENT_TYPE: {}},
        },
    },
    summary="Prometheus metrics: queue length, jobs by state, scheduling latency",
)
def metrics(_user: CurrentUser, db: Db, request: Request) -> Response:
    accept = request.headers.get("accept")  # content negotiation (not an OpenAPI parameter)
    body, content_type = render(service.queue_stats(db), service.cluster_info(db), accept)
    return Response(body, media_type=content_type)


@router.get(
    "/v1/cluster",
    response_model=ClusterView,
    responses=AUTH_ERRORS,
    summary="Ray nodes, resources used and free, queue length",
)
def cluster(_user: CurrentUser, db: Db) -> ClusterView:
    info = service.cluster_info(db)
    used = {
        k: max(total - info.resources_available.get(k, 0.0), 0.0)
        for k, total in info.resources_total.items()
    }
    return ClusterView(
        orchestrators=info.orchestrators,
        nodes=info.nodes,
        resources_total=info.resources_total,
        resources_available=info.resources_available,
        resources_used=used,
        reported_at=info.reported_at.isoformat() if info.reported_at else None,
        queue=service.queue_stats(db),
    )


@router.get("/v1/me", response_model=UserView, responses=AUTH_ERRORS, summary="Who am I")
def me(user: CurrentUser) -> UserView:
    return user
