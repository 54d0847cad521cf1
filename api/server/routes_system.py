"""Health, Prometheus metrics, the cluster view and the caller's identity.

Who reads what: ``/healthz`` anyone; ``/metrics`` (every user's job counts) admins only;
``/v1/cluster`` admins in full (orchestrator host names, PIDs and Ray addresses, node
addresses), plain users a reduced view: resources per node and in total without Ray's
``node:<ip>`` entries, the number of live orchestrators, and the queue of their own jobs.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.server.auth import AdminUser, CurrentUser
from api.server.deps import AUTH_ERRORS, Db, problem
from api.server.problems import ApiProblem
from api.server.prometheus import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, render
from api.server.schemas import Health
from orchestrator import service
from orchestrator.schemas import ClusterInfo, OrchestratorView, QueueStats, UserView

router = APIRouter(tags=["system"])


def version() -> str:
    try:
        return metadata.version("dino-orchestrator")
    except metadata.PackageNotFoundError:
        return "0+unknown"


FORBIDDEN: dict[int | str, dict[str, Any]] = {403: problem("the route is for admins")}


class ClusterView(BaseModel):
    """The Ray cluster (from the freshest orchestrator heartbeat) and the job queue."""

    view: Literal["admin", "user"] = Field(description="admin: everything; user: reduced")
    orchestrators_alive: int
    orchestrators: list[OrchestratorView] = Field(description="admins only; [] for users")
    nodes: list[dict[str, object]] = Field(description="users: resources and liveness only")
    resources_total: dict[str, float]
    resources_available: dict[str, float]
    resources_used: dict[str, float] = Field(description="total - available, per resource")
    reported_at: str | None
    queue: QueueStats = Field(description="admins: every job; users: their own jobs")
    fixed_size: bool = Field(description="no node will join: jobs no node holds are refused")


def _public_resources(resources: dict[str, float]) -> dict[str, float]:
    """Without Ray's per-node ``node:<ip>`` markers (they name the hosts' addresses)."""
    return {k: v for k, v in resources.items() if not k.startswith("node:")}


def _user_node(node: dict[str, Any]) -> dict[str, object]:
    return {
        "alive": bool(node.get("alive", True)),
        "resources": _public_resources(dict(node.get("resources") or {})),
    }


def cluster_view(info: ClusterInfo, queue: QueueStats, admin: bool) -> ClusterView:
    """The full view for an admin; for a plain user no host, PID or address."""
    total, available = info.resources_total, info.resources_available
    if not admin:
        total, available = _public_resources(total), _public_resources(available)
    used = {k: max(t - available.get(k, 0.0), 0.0) for k, t in total.items()}
    return ClusterView(
        view="admin" if admin else "user",
        orchestrators_alive=len(info.orchestrators),
        orchestrators=info.orchestrators if admin else [],
        nodes=info.nodes if admin else [_user_node(n) for n in info.nodes],
        resources_total=total,
        resources_available=available,
        resources_used=used,
        reported_at=info.reported_at.isoformat() if info.reported_at else None,
        queue=queue,
        fixed_size=info.fixed_size,
    )


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
        **FORBIDDEN,
        200: {
            "description": "Prometheus text format 0.0.4, or OpenMetrics 1.0 when the Accept "
            "header asks for application/openmetrics-text",
            "content": {TEXT_CONTENT_TYPE: {}, OPENMETRICS_CONTENT_TYPE: {}},
        },
    },
    summary="Prometheus metrics: queue length, jobs by state, scheduling latency (admins)",
)
def metrics(_admin: AdminUser, db: Db, request: Request) -> Response:
    accept = request.headers.get("accept")  # content negotiation (not an OpenAPI parameter)
    body, content_type = render(service.queue_stats(db), service.cluster_info(db), accept)
    return Response(body, media_type=content_type)


@router.get(
    "/v1/cluster",
    response_model=ClusterView,
    responses=AUTH_ERRORS,
    summary="Ray nodes, resources used and free, queue (admins: everything; users: reduced)",
)
def cluster(user: CurrentUser, db: Db) -> ClusterView:
    admin = user.role == "admin"
    queue = service.queue_stats(db, owner_id=None if admin else user.id)
    return cluster_view(service.cluster_info(db), queue, admin)


@router.get("/v1/me", response_model=UserView, responses=AUTH_ERRORS, summary="Who am I")
def me(user: CurrentUser) -> UserView:
    return user
