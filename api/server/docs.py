"""Who may read the API's own documentation: ``/openapi.json``, ``/docs``, ``/redoc``.

``DINO_PUBLIC_DOCS`` (:attr:`ApiSettings.public_docs`) decides. On (the default of the
embedded ``dino serve``): anyone, as FastAPI and fastapi-offline serve them; the schema is
what the source code publishes, nothing user-specific. Off (set in ``deploy/``): each page
needs a bearer token like every other route, so an unauthenticated caller learns neither the
server's version nor its routes. The HTML pages fetch ``/openapi.json`` from the browser,
which sends no token: with the docs off, read the schema with a token
(``curl -H "Authorization: Bearer $DINO_TOKEN" $DINO_API_URL/openapi.json``) or behind a
proxy that adds it. The pages' static scripts stay open: they are the same for everyone.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.routing import Route

from api.server.auth import current_user

DOCS_URL = "/docs"  # Swagger UI
REDOC_URL = "/redoc"


def doc_paths(app: FastAPI) -> set[str]:
    """The schema, Swagger UI (and its OAuth2 redirect) and ReDoc paths of ``app``."""
    found = (app.openapi_url, app.swagger_ui_oauth2_redirect_url, DOCS_URL, REDOC_URL)
    return {p for p in found if p}


def require_token_for_docs(app: FastAPI) -> None:
    """Put the docs routes FastAPI and fastapi-offline added behind :func:`current_user`
    (same paths and pages, each now answering 401 without a valid token)."""
    paths = doc_paths(app)
    docs = [r for r in app.router.routes if isinstance(r, Route) and r.path in paths]
    app.router.routes = [r for r in app.router.routes if r not in docs]
    for route in docs:
        app.add_api_route(
            route.path,
            route.endpoint,
            methods=["GET"],
            include_in_schema=False,
            dependencies=[Depends(current_user)],
        )
