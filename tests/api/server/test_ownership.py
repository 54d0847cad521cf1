"""An evaluation scores only a checkpoint its caller owns: through a real server, a job id
of theirs (``source_job``) or a path inside one of their job directories; any other job is
a 404, exactly like reading it (issue 16, item 1)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.dependencies import release_dependents
from orchestrator.models import Job
from orchestrator.states import transition
from tests.api.conftest import Server
from tests.api.helpers import fields, tiny
from worker.contracts import RUNNING, SUCCEEDED
from worker.deployment import jobs_root


def _pretrain(server: Server, user: str) -> dict:
    with server.client(user) as c:
        r = c.post("/v1/jobs", json={"name": "src", "config": tiny()})
        assert r.status_code == 201, r.text
        return dict(r.json())


def _succeed(server: Server, job_id: str, checkpoint: str) -> None:
    """What the orchestrator records when the job ends with a checkpoint."""
    with server.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        transition(s, job, RUNNING, "test claim")
        transition(s, job, SUCCEEDED, "test end", values={"checkpoint_uri": checkpoint})
        release_dependents(s, job, checkpoint)


def test_another_users_checkpoint_is_not_found(server: Server) -> None:
    theirs = _pretrain(server, "alice")
    path = f"{theirs['storage_uri']}/checkpoints/checkpoint_000001.pt"
    with server.client("bob") as c:
        for body in (
            {"kind": "eval_knn", "source_job": theirs["id"]},
            {"kind": "eval_knn", "source_checkpoint": path},
            {"kind": "eval_linear", "source_checkpoint": f"{jobs_root()}/{theirs['id']}/../"
             f"{theirs['id']}/checkpoints/x.pt"},
        ):  # fmt: skip
            r = c.post("/v1/jobs", json=body)
            assert r.status_code == 404, (body, r.text)
            assert r.json()["detail"] == f"no job {theirs['id']!r} visible to user 'bob'"
        # a job id that does not exist reads the same
        r = c.post("/v1/jobs", json={"kind": "eval_knn", "source_job": "job-000000000000"})
        assert r.status_code == 404
        assert c.get("/v1/jobs", params={"kind": "eval_knn"}).json()["items"] == []


def test_a_path_outside_every_job_directory_is_refused(server: Server, tmp_path: Path) -> None:
    with server.client("alice") as c:
        for path in (str(tmp_path / "c.pt"), jobs_root(), f"{jobs_root()}/c.pt"):
            r = c.post("/v1/jobs", json={"kind": "eval_knn", "source_checkpoint": path})
            assert r.status_code == 422 and fields(r.json()) == ["body.source_checkpoint"]
            assert "one of your jobs" in r.json()["errors"][0]["message"]
        r = c.post("/v1/jobs", json={"kind": "eval_knn"})
        assert r.status_code == 422 and "exactly one of source_job" in r.json()["detail"]


def test_own_job_by_id_waits_for_it_or_scores_its_last_checkpoint(server: Server) -> None:
    mine = _pretrain(server, "alice")
    with server.client("alice") as c:
        waiting = c.post("/v1/jobs", json={"kind": "eval_knn", "source_job": mine["id"]})
        assert waiting.status_code == 201, waiting.text
        assert waiting.json()["depends_on"] == mine["id"]
        assert waiting.json()["source_checkpoint"] is None
        ckpt = f"{mine['storage_uri']}/checkpoints/checkpoint_000004.pt"
        _succeed(server, mine["id"], ckpt)
        # the waiting evaluation was released with the final checkpoint
        assert c.get(f"/v1/jobs/{waiting.json()['id']}").json()["source_checkpoint"] == ckpt
        later = c.post("/v1/jobs", json={"kind": "eval_attention", "source_job": mine["id"]})
        assert later.status_code == 201 and later.json()["source_checkpoint"] == ckpt
        assert later.json()["depends_on"] is None
        by_path = c.post("/v1/jobs", json={"kind": "eval_knn", "source_checkpoint": ckpt})
        assert by_path.status_code == 201, by_path.text
        # an evaluation job is not a pretraining job to score
        r = c.post("/v1/jobs", json={"kind": "eval_knn", "source_job": later.json()["id"]})
        assert r.status_code == 422 and fields(r.json()) == ["body.source_job"]
    with server.client("root") as admin:  # admins see, and so may evaluate, every job
        r = admin.post("/v1/jobs", json={"kind": "eval_knn", "source_job": mine["id"]})
        assert r.status_code == 201 and r.json()["source_checkpoint"] == ckpt
