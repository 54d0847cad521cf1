"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis v4) against
the ASGI app on a real SQLite database, authenticated: no request may get a 5xx, responses
must match the documented status codes, media types and schemas, and every rejected request
must be a 4xx problem+json (a 422 names each field).

Each operation gets ``MAX_EXAMPLES`` valid-by-schema and ``MAX_EXAMPLES`` invalid cases.
(schemathesis' ``pytest.from_fixture`` breaks on pytest 9, so the strategies are driven
with ``hypothesis.given`` directly.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.server.app import create_app
from api.server.auth import issue_token
from api.server.routes_grids import router as grids_router
from api.server.routes_jobs import router as jobs_router
from api.server.routes_system import router as system_router
from api.server.settings import ApiSettings
from orchestrator.db import open_database

MAX_EXAMPLES = 25


def _operations() -> list[tuple[str, str, bool]]:
    """(method, path, has inputs) of every route; an operation without parameters or body
    has no invalid input to generate."""
    probe = FastAPI()
    for router in (system_router, jobs_router, grids_router):
        probe.include_router(router)
    return [
        (method.upper(), path, bool(op.get("parameters") or op.get("requestBody")))
        for path, item in probe.openapi()["paths"].items()
        for method, op in item.items()
    ]


OPERATIONS = [(m, p) for m, p, _ in _operations()]
CASES = [
    pytest.param(m, p, mode, id=f"{mode.value}-{m} {p}")
    for m, p, has_inputs in _operations()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if has_inputs or mode is GenerationMode.POSITIVE
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The loaded schema (bound to a fresh app and database) and a user's token."""
    home = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DINO_HOME", str(home))
        mp.setenv("DINO_STORAGE_URI", str(home / "jobs"))
        db = open_database(f"sqlite:///{home / 'fuzz.db'}")
        cfg = ApiSettings(dataset_roots=[str(home)], max_grid_combinations=8)
        app = create_app(cfg, db)
        token = issue_token(db, "fuzzer")
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        # the token is always sent (auth has its own tests): no cases without it
        schema.config.generation.update(with_security_parameters=False)
        yield schema, token
        db.dispose()


def _check(case: schemathesis.Case, token: str) -> None:
    # a valid-by-schema config may still be refused by DinoConfig (a 422 naming the field):
    # "positive data is accepted" does not hold for this API by design
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[positive_data_acceptance],
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == response.status_code and problem["detail"]
        if response.status_code == 422:
            assert problem["errors"] and all(e["field"] for e in problem["errors"])


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_operation_never_fails_on_the_server(
    fuzzed: tuple[Any, str], method: str, path: str, mode: GenerationMode
) -> None:
    schema, token = fuzzed
    operation = schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        _check(case, token)

    run()


def test_the_fuzzed_operations_are_all_of_the_api(fuzzed: tuple[Any, str]) -> None:
    schema, _ = fuzzed
    assert sorted(OPERATIONS) == sorted(
        (method.upper(), path)
        for path, item in schema.raw_schema["paths"].items()
        for method in item
    )
    assert len(OPERATIONS) == 14  # with POST /v1/grids/{grid_id}/extend (issue 17)
