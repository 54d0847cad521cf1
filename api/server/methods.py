"""Which HTTP methods a path answers: the ``Allow`` header of a 405, and ``OPTIONS``.

A path such as ``/v1/jobs`` is served by two routes (GET lists, POST submits). Starlette
answers a method neither takes from the first route whose path matches, so its ``Allow``
would name that route's methods only; here the router is asked, method by method, which
route would take the request (``BaseRoute.matches``: routers included in the app too).
"""

from __future__ import annotations

from fastapi import Request
from starlette.routing import Match

METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of ``request``'s path takes, plus ``OPTIONS``, sorted."""
    methods = {"OPTIONS"}
    for method in METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return sorted(methods)
