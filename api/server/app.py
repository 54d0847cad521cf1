"""The FastAPI application: ``create_app()`` (``uvicorn --factory api.server.app:create_app``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

from api.server.body_limit import BodyLimitMiddleware
from api.server.deps import no_unknown_query
from api.server.docs import DOCS_URL, REDOC_URL, require_token_for_docs
from api.server.problems import install_problem_handlers
from api.server.routes_grids import router as grids_router
from api.server.routes_jobs import router as jobs_router
from api.server.routes_system import router as system_router
from api.server.routes_system import version
from api.server.settings import ApiSettings
from orchestrator.db import Database, open_database

DESCRIPTION = """\
Submit DINO pretraining and evaluation jobs and ablation grids, follow them, read the
ablation table. Every route except `/healthz` (and these docs, unless the server sets
`DINO_PUBLIC_DOCS=false`) needs `Authorization: Bearer <token>` (create one with
`dino token create USER`); `/v1/cluster` shows the Ray details and `/metrics` every user's
counts to admins only. Errors are `application/problem+json` (RFC 9457) with an
`errors` list naming each invalid field (`body.config.loss.teacher_temp`).
"""


def create_app(settings: ApiSettings | None = None, db: Database | None = None) -> FastAPI:
    """The api on ``db`` (default: open and migrate the deployment's job database)."""
    cfg = settings or ApiSettings.from_env()
    owned = db is None
    database = db if db is not None else open_database()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            database.dispose()

    # /docs and /redoc with Swagger UI and ReDoc served by this app, not a CDN: the pages
    # work on a cluster without internet access
    app = FastAPIOffline(
        title="DINO Orchestrator API",
        version=version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(no_unknown_query)],
        docs_url=DOCS_URL,
        redoc_url=REDOC_URL,
    )
    app.state.db = database
    app.state.settings = cfg
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)
    app.include_router(system_router)
    app.include_router(jobs_router)
    app.include_router(grids_router)
    if not cfg.public_docs:
        require_token_for_docs(app)
    return app
