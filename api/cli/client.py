"""A small HTTP client of the job API for the ``dino`` command line (httpx).

``DINO_API_URL`` (default ``http://127.0.0.1:8000``) and ``DINO_TOKEN`` (else the token file
``<DINO_HOME>/token`` written by ``dino token create --save``) configure it. Server errors
become :class:`ApiError`, whose text lists each field path the server named.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import httpx

from api.cli.token_store import read_token

DEFAULT_API_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({502, 503, 504})


class ApiError(Exception):
    """A failed API call: HTTP status (0 = unreachable) and the problem document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(self.render())

    def render(self) -> str:
        p = self.problem
        detail = str(p.get("detail", ""))
        if self.status:
            detail = f"HTTP {self.status} {p.get('title', '')}".rstrip() + f": {detail}"
        lines = [detail]
        for e in p.get("errors") or []:
            if isinstance(e, dict):
                lines.append(f"  {e.get('field', '?')}: {e.get('message', '')}")
        return "\n".join(lines)


def api_url() -> str:
    return os.environ.get("DINO_API_URL", "").strip() or DEFAULT_API_URL


def _problem_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"title": response.reason_phrase, "detail": response.text[:500]}
    return body if isinstance(body, dict) else {"detail": str(body)[:500]}


class ApiClient:
    """Calls to the job API with the caller's bearer token."""

    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 60):
        self.base_url = (base_url or api_url()).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    @classmethod
    def from_env(cls) -> ApiClient:
        return cls(api_url(), read_token())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, retries: int = 0, **kw: Any) -> httpx.Response:
        """One call; transport errors and 502/503/504 are retried ``retries`` times (only
        safe for GETs and for POSTs carrying an Idempotency-Key)."""
        for attempt in range(retries + 1):
            try:
                response = self._http.request(method, path, **kw)
            except httpx.TransportError as err:
                if attempt < retries:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise ApiError(
                    0,
                    {
                        "detail": f"cannot reach the API at {self.base_url} ({err}): start it "
                        "with `dino serve` or set DINO_API_URL"
                    },
                ) from None
            if response.status_code in RETRY_STATUSES and attempt < retries:
                time.sleep(0.5 * 2**attempt)
                continue
            if response.status_code >= 400:
                raise ApiError(response.status_code, _problem_of(response))
            return response
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    # ---- jobs and grids ----------------------------------------------------------------
    def submit_grid(self, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """POST /v1/grids with an Idempotency-Key (new if not given), retried safely."""
        headers = {"Idempotency-Key": key or str(uuid.uuid4())}
        return dict(self._json("POST", "/v1/grids", json=body, headers=headers, retries=3))

    def plan_grid(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/grids?dry_run=true: the server's check of a grid; nothing is stored."""
        params = {"dry_run": "true"}
        return dict(self._json("POST", "/v1/grids", json=body, params=params, retries=3))

    def submit_job(self, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key or str(uuid.uuid4())}
        return dict(self._json("POST", "/v1/jobs", json=body, headers=headers, retries=3))

    def list_jobs(self, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        return dict(self._json("GET", "/v1/jobs", params=query, retries=2))

    def get_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/jobs/{job_id}", retries=2))

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/jobs/{job_id}/cancel"))

    def list_grids(self, limit: int = 50) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/grids", params={"limit": limit}, retries=2))

    def get_grid(self, grid_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/grids/{grid_id}", retries=2))

    def extend_grid(self, grid_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/grids/{id}/extend: more axis values or seeds; only new runs queue."""
        return dict(self._json("POST", f"/v1/grids/{grid_id}/extend", json=body))

    def cancel_grid(self, grid_id: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/grids/{grid_id}/cancel"))

    def grid_summary(
        self, grid_id: str, fmt: str = "json", view: str = "combinations"
    ) -> httpx.Response:
        params = {"format": fmt, "view": view}
        return self.request("GET", f"/v1/grids/{grid_id}/summary", params=params)

    def cluster(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/cluster", retries=2))

    def me(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/me"))
