"""Multi-worker pretraining under Ray Train V2's ``TorchTrainer`` (DDP: gloo on CPU, nccl on GPU).

Every rank runs :func:`worker.attempt.pretrain_attempt`; dino_core picks up the process group
Ray Train set up, splits the global batch across ranks and calls callbacks on rank 0 only.
Rank 0 tracks to MLflow itself (the job's own run; Ray's ``MLflowLoggerCallback`` is not
used: it keeps trial -> run in memory and Train V2 rejects it) and sends progress events
through a small :class:`JobChannel` actor, which the calling process drains into
``on_progress``; cancellation goes the other way.

Resources are per worker: ``num_cpus``/``num_gpus``/``custom`` of the spec are reserved for
each of the ``num_workers`` ranks. The calling process itself needs no CPU of its own; it and
the channel run on the head node (the orchestrator places the job actor there), where Ray
Train also keeps the group's controller, so losing a worker node never takes them along.

A lost rank (its node died or was preempted, its process was killed, or a collective failed
after training had started) makes Ray Train restore the group within the attempt: new
workers, and dino_core resumes from the newest checkpoint in the job's storage, continuing
the same MLflow run (steps already logged are skipped). Node preemptions are restored
without limit (Ray's ``max_preemption_failures=-1``), other group failures up to
:data:`GROUP_RESTARTS` times; then the attempt fails and the orchestrator decides. A failure
no restart can fix (config, data, code) ends the group at once: rank 0 records the result on
the channel and every rank of the group Ray Train starts next returns without training.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import ray

from dino_core.config import DinoConfig, build_config
from worker.contracts import (
    FAILED,
    HEAD_NODE,
    CancelFn,
    JobResult,
    JobSpec,
    ProgressFn,
    Warned,
    WorkerEvent,
    event_from_json,
    event_to_json,
)
from worker.mlflow_run import RunTarget
from worker.outcome import failed
from worker.progress import CANCEL_POLL_S

log = logging.getLogger(__name__)
DRAIN_INTERVAL_S = 0.2
GROUP_RESTARTS = 3  # Ray Train FailureConfig.max_failures: lost ranks restored per attempt


@ray.remote(num_cpus=0, resources=HEAD_NODE)
class JobChannel:
    """Rank 0 ⇄ caller: progress events one way, the cancel flag and the result the other.

    Events and the result travel as their JSON objects (``event_to_json``,
    ``JobResult.model_dump``)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.cancel = False
        self.result: dict[str, Any] | None = None
        self.groups = 0

    def group_started(self) -> int:
        """Rank 0 of a new group checks in; how many groups this attempt has started."""
        self.groups += 1
        return self.groups

    def push(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def drain(self) -> list[dict[str, Any]]:
        out, self.events = self.events, []
        return out

    def request_cancel(self) -> None:
        self.cancel = True

    def cancelled(self) -> bool:
        return self.cancel

    def set_result(self, result: dict[str, Any]) -> None:
        self.result = result

    def get_result(self) -> dict[str, Any] | None:
        return self.result


def _train_loop(loop_config: dict[str, Any]) -> None:
    """Body of every Ray Train worker."""
    import ray.train

    from worker.attempt import pretrain_attempt

    spec = JobSpec.model_validate(loop_config["spec"])
    config = build_config(spec.config, source=f"job {spec.job_id} config")
    channel = loop_config["channel"]
    if ray.get(channel.get_result.remote()) is not None:
        return  # an earlier group of this attempt ended it (Ray Train restarted the group)
    if ray.train.get_context().get_world_rank() != 0:
        pretrain_attempt(spec, config, None, lambda _e: None, None)
        return

    def emit(event: WorkerEvent) -> None:
        channel.push.remote(event_to_json(event))

    def should_cancel() -> bool:
        return bool(ray.get(channel.cancelled.remote()))

    group = ray.get(channel.group_started.remote())
    if group > 1:
        emit(
            Warned(
                message=f"Ray Train restored the worker group (group {group} of attempt "
                f"{spec.attempt}) after it lost a rank; training resumes from the newest "
                "checkpoint"
            )
        )
    target = RunTarget(**loop_config["target"])
    result = pretrain_attempt(spec, config, target, emit, should_cancel, in_group=True)
    ray.get(channel.set_result.remote(result.model_dump(mode="json")))
    if result.status == FAILED:  # the other ranks may wait in a collective: end the group
        raise RuntimeError(f"rank 0 failed: {result.error}")


def _scaling(spec: JobSpec) -> Any:
    from ray.train import ScalingConfig

    res = spec.resources
    per_worker: dict[str, float] = {"CPU": res.num_cpus, **res.custom}
    if res.num_gpus > 0:
        per_worker["GPU"] = res.num_gpus
    return ScalingConfig(
        num_workers=res.num_workers, use_gpu=res.num_gpus > 0, resources_per_worker=per_worker
    )


def _forward(
    channel: Any,
    emit: ProgressFn,
    should_cancel: CancelFn | None,
    done: threading.Event,
) -> None:
    """Drain rank 0's events into ``emit`` and relay ``should_cancel`` until ``done``."""
    since_poll = 0.0
    while True:
        finished = done.wait(DRAIN_INTERVAL_S)
        for event in ray.get(channel.drain.remote()):
            emit(event_from_json(event))
        if finished:
            return
        since_poll += DRAIN_INTERVAL_S
        if should_cancel is not None and since_poll >= CANCEL_POLL_S:
            since_poll = 0.0
            try:
                if should_cancel():
                    channel.request_cancel.remote()
            except Exception:  # a broken cancel check must not end the job
                log.exception("the cancel check or its relay to rank 0 failed; asking again")


def run_distributed(
    spec: JobSpec,
    config: DinoConfig,
    target: RunTarget,
    emit: ProgressFn,
    should_cancel: CancelFn | None,
) -> JobResult:
    """Run the attempt on ``spec.resources.num_workers`` Ray Train workers."""
    from dataclasses import asdict

    from ray.train import FailureConfig, RunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if not ray.is_initialized():
        ray.init()
    channel = JobChannel.remote()  # type: ignore[attr-defined]
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={
            "spec": spec.model_dump(mode="json"),
            "target": asdict(target),
            "channel": channel,
        },
        torch_config=TorchConfig(backend="nccl" if spec.resources.num_gpus > 0 else "gloo"),
        scaling_config=_scaling(spec),
        run_config=RunConfig(
            name=f"{spec.job_id}-attempt-{spec.attempt}",
            storage_path=spec.storage_uri.rstrip("/") + "/ray_train",
            failure_config=FailureConfig(max_failures=GROUP_RESTARTS),
        ),
    )
    done = threading.Event()
    forwarder = threading.Thread(
        target=_forward, args=(channel, emit, should_cancel, done), daemon=True
    )
    forwarder.start()
    try:
        outcome = trainer.fit()
        error = outcome.error
    except Exception as err:
        error = err
    finally:
        done.set()
        forwarder.join(timeout=30)
    raw = ray.get(channel.get_result.remote())
    ray.kill(channel)
    if raw is not None:
        return JobResult.model_validate(raw)
    if error is None:
        error = RuntimeError("Ray Train finished but rank 0 reported no result")
    return _record_failure(spec, target, emit, error)


def _record_failure(
    spec: JobSpec, target: RunTarget, emit: ProgressFn, error: BaseException
) -> JobResult:
    """A rank died before rank 0 could report: mark the job's run FAILED from here."""
    from worker.attempt import finish_session, open_session

    session = open_session(spec, target, emit)
    result = failed(spec.job_id, error, session.run_id, otherwise="infrastructure")
    finish_session(session, result)
    return result
