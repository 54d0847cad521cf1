"""The scheduling loop: claim what fits, run each attempt in a detached Ray actor, track it.

One pass (:meth:`Scheduler.tick`): heartbeat and adoption of orphaned jobs when due, cancel
requests, claims of ready jobs that fit the cluster (priority, then FIFO), then a wait of at
most ``poll_interval_s`` for actor replies, which are written to the database. The database
is the source of truth; actor state is re-derived from it after a restart.

The actor of an attempt that succeeded (or paused) is kept warm for ``warm_actor_idle_s``
(:mod:`orchestrator.warm`) and runs the next ready job of the same resource shape; kept actors
that would stand in the way of a job of another shape are killed first.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayError
from sqlalchemy import update

from orchestrator import outcomes, queries, registry
from orchestrator.autoscale import ScaleRequests, bundles_of
from orchestrator.capacity import Bundle, Shortfall, add_into, demand_of
from orchestrator.db import Database
from orchestrator.mlflow_parent import (
    ensure_experiment_id,
    ensure_parent_run,
    finish_parent_run,
    publish_results,
)
from orchestrator.models import Job
from orchestrator.ray_cluster import capacity_snapshot, cluster_report, node_loss_cause
from orchestrator.rung_decisions import decide_paused
from orchestrator.runner import JobRunner, actor_name
from orchestrator.settings import OrchestratorSettings
from orchestrator.specs import actor_options, build_spec
from orchestrator.states import record_event
from orchestrator.warm import WarmActor, WarmPool, ends_well, reusable
from worker.contracts import QUEUED, JobResult, PollReply, Resources

log = logging.getLogger(__name__)
RELEASE_CREDIT_S = 2.0  # how long a killed actor's resources count as free before Ray says so
FOLLOW_UP_POLL_S = 0.05  # after a refill: long enough for a kept actor's job to report its start


@dataclass
class Tracked:
    """An attempt this orchestrator is watching."""

    job_id: str
    attempt: int
    actor: Any
    demand: Bundle
    name: str = ""  # the actor's Ray name
    poolable: bool = False  # a single-process attempt whose actor may run the next job
    bundles: list[Bundle] = field(default_factory=list)  # what it places (autoscaler request)
    cursor: int | None = 0  # None: take every event the actor still holds (re-attached)
    ref: Any = None  # the pending poll
    cancel_sent_at: float | None = None
    node_id: str | None = None  # known from the first poll reply


class Scheduler:
    """Runs jobs from the database on the connected Ray cluster."""

    def __init__(
        self, db: Database, settings: OrchestratorSettings, orchestrator_id: str = ""
    ) -> None:
        self.db = db
        self.settings = settings
        self.id = orchestrator_id or registry.new_orchestrator_id()
        self.tracked: dict[str, Tracked] = {}
        self._runner = ray.remote(JobRunner)
        self._tracking_uri = settings.resolved_tracking_uri()
        self._waiting_noted: dict[str, str] = {}  # job id -> the waiting reason recorded
        self._next_heartbeat = 0.0
        self._released: list[tuple[float, str, Bundle]] = []  # (until, node id, resources)
        self.warm = WarmPool(settings.warm_actor_idle_s)
        self._scale = ScaleRequests(enabled=not settings.fixed_cluster())
        self._unplaced: list[Bundle] = []  # bundles of ready jobs the last pass could not claim

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Register, then re-attach to or requeue the jobs of dead orchestrators."""
        report = self._report()
        registry.register(self.db, self.id, str(report.get("address", "")), report)
        self._adopt_orphans()
        self._next_heartbeat = time.monotonic() + self.settings.heartbeat_s

    def stop(self, *, owns_ray: bool) -> None:
        """Leave detached actors running (another orchestrator adopts them) unless this
        process owns the local Ray, which dies with it: then requeue its jobs."""
        if owns_ray:
            for t in list(self.tracked.values()):
                outcomes.requeue_on_shutdown(self.db, t.job_id, t.attempt, self.id)
                self._release(t)
        self.tracked.clear()
        self._retire_warm(self.warm.drain())
        self._scale.update([])  # no standing request outlives this orchestrator
        registry.mark_stopped(self.db, self.id)

    def tick(self) -> None:
        if time.monotonic() >= self._next_heartbeat:
            self._housekeeping()
        self._handle_cancels()
        decide_paused(self.db)  # promoted runs are QUEUED before this pass launches
        self._retire_warm(self.warm.expired(time.monotonic()))
        self._launch()
        self._request_capacity()
        freed = len(self._released) + self.warm.kept
        self._poll(self.settings.poll_interval_s)
        if len(self._released) + self.warm.kept > freed:  # a slot just freed: fill it now
            started = len(self.tracked)
            self._launch()
            if len(self.tracked) > started:  # and hear of the starts before the next pass
                self._poll(min(self.settings.poll_interval_s, FOLLOW_UP_POLL_S))

    # ---- housekeeping ------------------------------------------------------------------
    def _report(self) -> dict[str, Any]:
        fixed = self.settings.fixed_cluster()
        return {**cluster_report(), "lease_s": self.settings.lease_s, "fixed_size": fixed}

    def _housekeeping(self) -> None:
        registry.heartbeat(self.db, self.id, self._report())
        self._next_heartbeat = time.monotonic() + self.settings.heartbeat_s
        self._adopt_orphans()
        for grid_id, run_id, ok in queries.close_finished_grids(self.db):
            if run_id and self.settings.mlflow_setup:
                try:
                    publish_results(self.db, grid_id, self._tracking_uri, run_id)
                except Exception as err:  # MLflow down must not stop scheduling
                    log.warning("could not log the summary of grid %s: %s", grid_id, err)
                try:
                    finish_parent_run(self._tracking_uri, run_id, ok)
                except Exception as err:
                    log.warning("could not close MLflow parent run of grid %s: %s", grid_id, err)

    def _adopt_orphans(self) -> None:
        """Jobs RUNNING under a dead orchestrator (or under us but untracked)."""
        live = registry.live_orchestrators(self.db, self.settings.lease_s) | {self.id}
        ours = set()
        for job_id, attempt, owner in queries.running_jobs(self.db):
            if owner == self.id:
                ours.add(job_id)
                if job_id not in self.tracked:
                    self._attach(job_id, attempt, f"attempt {attempt} was not being watched")
            elif owner not in live and queries.take_over(self.db, job_id, attempt, owner, self.id):
                ours.add(job_id)
                self._attach(job_id, attempt, f"orchestrator {owner} is gone")
        for job_id in set(self.tracked) - ours:
            log.warning("job %s is no longer ours: stop watching it", job_id)
            self.tracked.pop(job_id, None)
        for job_id, attempt, name in queries.unreleased_attempts(self.db, live):
            self._kill_by_name(name)
            outcomes.mark_released(self.db, job_id, attempt)

    def _attach(self, job_id: str, attempt: int, why: str) -> None:
        name = queries.attempt_actor(self.db, job_id, attempt) or actor_name(job_id, attempt)
        with self.db.session() as s:
            job = s.get(Job, job_id)
            res = Resources.model_validate(job.resources if job else {})
        try:
            actor = ray.get_actor(name, namespace=self.settings.namespace)
        except ValueError:
            outcomes.finish(
                self.db,
                job_id,
                attempt,
                self.id,
                self.settings,
                failure=f"{why} and its Ray actor {name} is gone (its node, process or "
                "local Ray died)",
            )
            return
        with self.db.session() as s:
            record_event(
                s, "adopted", f"{why}; re-attached to {name}", job_id=job_id, attempt=attempt
            )
        self.tracked[job_id] = Tracked(
            job_id, attempt, actor, demand_of(res), name, bundles=bundles_of(res), cursor=None
        )

    # ---- cancels -----------------------------------------------------------------------
    def _handle_cancels(self) -> None:
        now = time.monotonic()
        for job_id in queries.cancel_requests(self.db, self.id):
            t = self.tracked.get(job_id)
            if t is None:
                continue
            if t.cancel_sent_at is None:
                t.actor.cancel.remote()
                t.cancel_sent_at = now
            elif now - t.cancel_sent_at > self.settings.cancel_grace_s:
                grace = self.settings.cancel_grace_s
                if outcomes.cancel_stuck(self.db, job_id, t.attempt, self.id, grace):
                    self._release(t)

    # ---- launching ---------------------------------------------------------------------
    def _request_capacity(self) -> None:
        """Ask the autoscaler for what runs, what is kept and what waits (growable clusters)."""
        wanted = [b for t in self.tracked.values() for b in t.bundles]
        wanted += [dict(w.demand) for w in self.warm.actors if w.demand]
        self._scale.update(wanted + self._unplaced)

    def _launch(self) -> None:
        self._unplaced = []
        ready = queries.ready_jobs(self.db, self.settings.claim_batch)
        if not ready:
            return
        held: Bundle = {}
        for t in self.tracked.values():
            add_into(held, t.demand)
        for w in self.warm.actors:
            add_into(held, w.demand)
        now = time.monotonic()
        self._released = [r for r in self._released if r[0] > now]
        released: dict[str, Bundle] = {}
        for _, node_id, demand in self._released:
            add_into(released.setdefault(node_id, {}), demand)
        cap = capacity_snapshot(held, released)
        for job in ready:
            res = Resources.model_validate(job.resources)
            why = cap.never_fits(res)
            if why is not None:
                self._note_waiting(job, why)
                self._unplaced += bundles_of(res)
                continue
            warm = self.warm.match(demand_of(res)) if reusable(res) else None
            if warm is None and not cap.fits_now(res):
                # kept actors may hold what it needs: free them (strict priority holds below)
                self._retire_warm(self.warm.drain())
                cap.hold_back(res)
                self._unplaced += bundles_of(res)
                continue
            claimed = outcomes.claim(self.db, job.id, self.id, warm.name if warm else None)
            if claimed is None:
                continue
            if warm is not None:
                self.warm.take(warm)
                self._reuse_actor(claimed, res, warm)
                continue
            cap.take(res)
            self._start_attempt(claimed, res)

    def _note_waiting(self, job: Job, why: Shortfall) -> None:
        """The job's ``status_reason`` says why it waits (``waiting for capacity: needs 64
        CPUs; the largest node has 2 CPUs``), once per job and reason, with a ``waiting``
        event (on a growable cluster the autoscaler has been asked for such a node)."""
        reason = f"waiting for capacity: {why.message}"
        if self._waiting_noted.get(job.id) == reason:
            return
        self._waiting_noted[job.id] = reason
        with self.db.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == job.id, Job.status == QUEUED, Job.attempt == job.attempt)
                .values(status_reason=reason)
            )
            record_event(
                s,
                "waiting",
                f"{reason}; no node of the cluster can hold it now: "
                + (
                    "the autoscaler was asked for a node with these resources"
                    if self._scale.enabled
                    else "waiting for a node with these resources to join"
                ),
                job_id=job.id,
                grid_id=job.grid_id,
                attempt=job.attempt,
                data={"field": f"resources.{why.field}"},
            )

    def _mlflow_parent(self, job: Job) -> str | None:
        """Make sure the job's experiment (and its grid's parent run) exist; the parent id."""
        if not self.settings.mlflow_setup:
            return None
        try:
            if job.grid_id:
                return ensure_parent_run(self.db, job.grid_id, self._tracking_uri)
            ensure_experiment_id(self._tracking_uri, job.mlflow_experiment)
        except Exception as err:  # MLflow down: the worker retries on its own
            log.warning("MLflow set-up for job %s failed: %s", job.id, err)
        return None

    def _start_attempt(self, job: Job, res: Resources) -> None:
        parent = self._mlflow_parent(job)
        spec = build_spec(job, self._tracking_uri, parent, self.settings.dataset_roots)
        name = actor_name(job.id, job.attempt)
        try:
            opts = actor_options(res, name, self.settings.namespace)
            actor = self._runner.options(**opts).remote(
                spec.model_dump_json(), self.settings.job_fn, self.settings.actor_idle_exit_s()
            )
        except Exception as err:
            outcomes.finish(
                self.db,
                job.id,
                job.attempt,
                self.id,
                self.settings,
                failure=f"could not create the Ray actor {name}: {err}",
            )
            return
        self.tracked[job.id] = Tracked(
            job.id,
            job.attempt,
            actor,
            demand_of(res),
            name,
            poolable=reusable(res),
            bundles=bundles_of(res),
        )

    def _reuse_actor(self, job: Job, res: Resources, warm: WarmActor) -> None:
        """Run the claimed attempt in a kept actor; if that actor is gone, in a new one."""
        parent = self._mlflow_parent(job)
        spec = build_spec(job, self._tracking_uri, parent, self.settings.dataset_roots)
        try:
            ray.get(
                warm.actor.start.remote(spec.model_dump_json(), self.settings.job_fn),
                timeout=self.settings.lease_s,
            )
        except Exception as err:  # it died while kept (its node, its idle exit): start afresh
            log.warning("kept actor %s could not take job %s: %s", warm.name, job.id, err)
            self._kill_by_handle(warm.actor)
            outcomes.mark_released(self.db, warm.job_id, warm.attempt)
            outcomes.rename_attempt_actor(
                self.db, job.id, job.attempt, actor_name(job.id, job.attempt)
            )
            self._start_attempt(job, res)
            return
        outcomes.mark_released(self.db, warm.job_id, warm.attempt)
        with self.db.session() as s:
            record_event(
                s,
                "warm_start",
                f"attempt {job.attempt} runs in the kept actor {warm.name} (no new process)",
                job_id=job.id,
                grid_id=job.grid_id,
                attempt=job.attempt,
                data={"actor": warm.name},
            )
        self.tracked[job.id] = Tracked(
            job.id,
            job.attempt,
            warm.actor,
            warm.demand,
            warm.name,
            poolable=True,
            bundles=bundles_of(res),
        )

    def _retire_warm(self, actors: list[WarmActor]) -> None:
        """Kill kept actors; their resources count as free at once (release credit)."""
        for w in actors:
            self._free(w.actor, w.node_id, w.demand, w.job_id, w.attempt)

    # ---- polling -----------------------------------------------------------------------
    def _poll(self, timeout: float) -> None:
        if not self.tracked:
            time.sleep(timeout)
            return
        for t in self.tracked.values():
            if t.ref is None:
                t.ref = t.actor.poll.remote(t.cursor, self.settings.actor_wait_s)
        by_ref = {t.ref: t for t in self.tracked.values()}
        refs = list(by_ref)
        first, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if not first:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            self._on_reply(by_ref[ref], ref)

    def _on_reply(self, t: Tracked, ref: Any) -> None:
        t.ref = None
        try:
            reply: PollReply = ray.get(ref)
        except ActorUnavailableError:
            return  # transient: ask again next pass
        except RayError as err:
            cause = node_loss_cause(err, t.node_id)
            if cause is not None:
                self._lost_node(t, cause)
            else:
                self._end(
                    t, failure=f"the Ray actor of attempt {t.attempt} died: {_first_line(err)}"
                )
            return
        if reply.job_id is not None and (reply.job_id, reply.attempt) != (t.job_id, t.attempt):
            self._not_our_actor(t, f"job {reply.job_id} attempt {reply.attempt}")
            return
        if t.node_id is None:
            t.node_id = str(reply.node_id)
            with self.db.session() as s:
                record_event(
                    s,
                    "placed",
                    f"attempt {t.attempt} runs in process {reply.pid} on node {reply.node_id}",
                    job_id=t.job_id,
                    attempt=t.attempt,
                    data={"pid": reply.pid, "node_id": reply.node_id},
                )
        events = reply.events
        if events and not outcomes.apply_events(self.db, t.job_id, t.attempt, self.id, events):
            log.warning("job %s attempt %s is no longer ours", t.job_id, t.attempt)
            self.tracked.pop(t.job_id, None)
            return
        t.cursor = reply.cursor
        if reply.done:
            if reply.result is not None:
                self._end(t, result=reply.result)
            else:
                self._end(t, failure=f"the job function raised:\n{reply.error}")

    def _end(
        self, t: Tracked, *, result: JobResult | None = None, failure: str | None = None
    ) -> None:
        status = outcomes.finish(
            self.db, t.job_id, t.attempt, self.id, self.settings, result=result, failure=failure
        )
        if status is None:  # adopted by another orchestrator: its actor is theirs to end
            log.warning("job %s attempt %s is no longer ours", t.job_id, t.attempt)
            self.tracked.pop(t.job_id, None)
            return
        if t.poolable and self.warm.enabled and ends_well(result):
            until = time.monotonic() + self.warm.idle_s
            self.warm.keep(
                WarmActor(t.actor, t.name, t.node_id, t.demand, until, t.job_id, t.attempt)
            )
            self.tracked.pop(t.job_id, None)  # still unreleased: it holds the resources
            return
        self._release(t)

    def _not_our_actor(self, t: Tracked, other: str) -> None:
        """A re-attached actor runs another attempt: this one's outcome is lost."""
        self.tracked.pop(t.job_id, None)
        outcomes.finish(
            self.db,
            t.job_id,
            t.attempt,
            self.id,
            self.settings,
            failure=f"its Ray actor {t.name} runs {other} now (this attempt's outcome is lost)",
        )
        outcomes.mark_released(self.db, t.job_id, t.attempt)

    def _lost_node(self, t: Tracked, cause: str) -> None:
        status = outcomes.requeue_lost_node(
            self.db, t.job_id, t.attempt, self.id, self.settings, node_id=t.node_id, cause=cause
        )
        if status is None:
            self.tracked.pop(t.job_id, None)
            return
        self._kill_by_handle(t.actor)  # its resources died with the node: no release credit
        outcomes.mark_released(self.db, t.job_id, t.attempt)
        self.tracked.pop(t.job_id, None)

    def _release(self, t: Tracked) -> None:
        self._free(t.actor, t.node_id, t.demand, t.job_id, t.attempt)
        self.tracked.pop(t.job_id, None)

    def _free(
        self, actor: Any, node_id: str | None, demand: Bundle, job_id: str, attempt: int
    ) -> None:
        """Kill an actor, count its resources free at once (release credit) and mark the
        attempt it last ran released."""
        self._kill_by_handle(actor)
        if node_id:
            self._released.append((time.monotonic() + RELEASE_CREDIT_S, node_id, demand))
        outcomes.mark_released(self.db, job_id, attempt)

    def _kill_by_handle(self, actor: Any) -> None:
        with contextlib.suppress(RayError, ValueError):
            ray.kill(actor, no_restart=True)

    def _kill_by_name(self, name: str) -> None:
        with contextlib.suppress(ValueError):  # ValueError: already gone
            self._kill_by_handle(ray.get_actor(name, namespace=self.settings.namespace))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:500] if text else type(err).__name__
