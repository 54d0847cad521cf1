"""The OpenAPI document and docs page, Prometheus metrics, health, and the cluster view."""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.api.conftest import Server
from tests.api.helpers import grid_body

SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z]+="[^"]*"\})? (\S+)$')


def test_docs_render_and_openapi_is_valid(server: Server) -> None:
    with server.client() as anon:
        docs = anon.get("/docs")
        assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
        assert "swagger-ui" in docs.text and "/openapi.json" in docs.text
        assert anon.get("/redoc").status_code == 200
        doc = anon.get("/openapi.json").json()
    schemathesis.openapi.from_dict(doc).validate()  # the OpenAPI 3.x meta-schema
    assert doc["info"]["title"] == "DINO Orchestrator API"
    schemes = doc["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            secured = bool(op.get("security"))
            assert secured == (path != "/healthz"), f"{method} {path}"
            if secured:
                assert "application/problem+json" in op["responses"]["401"]["content"]
    # requests reuse the DinoConfig-checked models and their limits
    grid = doc["components"]["schemas"]["GridSubmission"]
    assert grid["additionalProperties"] is False
    assert grid["properties"]["axes"]["maxProperties"] == 8
    assert grid["properties"]["name"]["maxLength"] == 200
    summary = doc["paths"]["/v1/grids/{grid_id}/summary"]["get"]["responses"]["200"]["content"]
    assert set(summary) == {"application/json", "text/csv", "image/png"}


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m is not None, f"not a Prometheus sample line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_metrics_count_jobs_by_state(server: Server) -> None:
    server.add_user("mia")
    with server.client("mia") as c, server.client("root") as admin:
        before = _samples(admin.get("/metrics").text)
        grid = c.post("/v1/grids", json=grid_body("metrics")).json()
        first = next(j for j in grid["jobs"] if j["kind"] == "pretrain")
        c.post(f"/v1/jobs/{first['id']}/cancel")
        r = admin.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE dino_scheduling_latency_seconds histogram" in r.text
    after = _samples(r.text)
    queued, cancelled = 'dino_jobs{state="QUEUED"}', 'dino_jobs{state="CANCELLED"}'
    # cancelling combination 0's pretraining job cancels its k-NN job too; the grid's k-NN
    # baselines job waits on nothing
    assert after[queued] - before[queued] == 9 - 2
    assert after[cancelled] - before[cancelled] == 2
    assert after["dino_queue_length"] - before["dino_queue_length"] == 3 + 1
    assert after["dino_jobs_waiting_dependencies"] - before["dino_jobs_waiting_dependencies"] == 3
    assert (
        after['dino_scheduling_latency_seconds_bucket{le="+Inf"}']
        == after["dino_scheduling_latency_seconds_count"]
    )


def test_metrics_speak_openmetrics_when_the_scraper_asks(server: Server) -> None:
    with server.client("root") as c:
        om = c.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        odd = c.get("/metrics", headers={"Accept": "application/openmetrics-text; version=x"})
        plain = c.get("/metrics")
    assert om.status_code == 200
    assert om.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert om.text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(om.text)}  # strict parser
    assert families["dino_scheduling_latency_seconds"].type == "histogram"
    assert families["dino_jobs"].type == "gauge"
    assert set(families) >= {
        "dino_queue_length",
        "dino_jobs_waiting_dependencies",
        "dino_jobs_backing_off",
        "dino_orchestrators_alive",
        "dino_cluster_resources_total",
        "dino_cluster_resources_available",
    }
    # a version that is not a number falls back to the text format instead of failing
    assert odd.status_code == 200 and odd.headers["content-type"].startswith("text/plain")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in plain.text


def test_health_and_cluster_without_an_orchestrator(server: Server) -> None:
    with server.client() as anon, server.client("root") as c:
        health = anon.get("/healthz").json()
        assert health["status"] == "ok" and health["database"] == "ok"
        info = c.get("/v1/cluster").json()
    assert info["orchestrators"] == [] and info["reported_at"] is None
    assert info["view"] == "admin" and info["orchestrators_alive"] == 0
    assert info["queue"]["jobs_by_state"]["QUEUED"] >= 1


def _examples(doc: dict[str, Any], content: dict[str, Any]) -> list[Any]:
    """The example bodies of one request body: the media type's and its schema's."""
    schema = content.get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    found = [e["value"] for e in content.get("examples", {}).values()]
    return (
        found
        + list(schema.get("examples", []))
        + ([content["example"]] if "example" in content else [])
    )


def test_the_documented_example_bodies_are_accepted(server: Server) -> None:
    """Every example request body of /openapi.json, posted as it stands, is accepted
    (a grid's also by the dry run): the docs never show a request the server refuses."""
    posted = 0
    with server.client("alice") as c:
        doc = c.get("/openapi.json").json()
        for path, item in doc["paths"].items():
            for method, op in item.items():
                content = op.get("requestBody", {}).get("content", {}).get("application/json")
                if content is None or "{" in path:
                    continue
                for example in _examples(doc, content):
                    if path == "/v1/grids":
                        dry = c.post(path, json=example, params={"dry_run": "true"})
                        assert dry.status_code == 200, dry.text
                    r = c.request(method.upper(), path, json=example)
                    assert r.status_code in (200, 201), (path, example, r.text)
                    posted += 1
    assert posted >= 2  # one job and one grid example at least
