"""The DINO training loop (paper Algorithm 1), on CPU or GPU, alone or under torch.distributed.

``train(config, output_dir, callbacks)`` builds everything from the config, resumes from the
newest readable checkpoint in ``output_dir`` and runs until the last epoch, ``max_steps``, a
collapse (``collapse_action="stop"``), a non-finite loss, or a callback asking to stop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from dino_core.callbacks import (
    RUN_COLLAPSED,
    RUN_DIVERGED,
    RUN_STOPPED,
    RUN_SUCCEEDED,
    Callback,
    CallbackList,
    CheckpointEvent,
    CollapseEvent,
    EndEvent,
    EpochEvent,
    RunInfo,
    RunStatus,
    StepEvent,
)
from dino_core.checkpoint import load_latest, save_checkpoint
from dino_core.config import DinoConfig
from dino_core.data import build_train_loader, load_dataset
from dino_core.ibot import IBOTPatchLoss
from dino_core.loss import DINOLoss
from dino_core.metrics_file import MetricsFile, write_config
from dino_core.models import build_model
from dino_core.models.attention import plan_attention
from dino_core.models.sync_bn import sync_batchnorms
from dino_core.monitor import CollapseDetector
from dino_core.optim import build_optimizer, clip_per_parameter, drop_last_layer_grads, set_schedule
from dino_core.rank_rng import gather_rng_states, restore_rank_rng, seed_ranks
from dino_core.runtime import Runtime, detect_runtime, seed_everything
from dino_core.schedules import Schedules
from dino_core.state import TrainingState, backbone_of
from dino_core.step import step_loss
from dino_core.teacher import ema_update, make_teacher


@dataclass
class TrainResult:
    status: RunStatus
    step: int
    epoch: int
    metrics: dict[str, float]
    checkpoint: str | None
    collapse: dict[str, Any] | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class DivergedError(RuntimeError):
    """The loss became non-finite; the run stops keeping its last good checkpoint."""


_STAT_KEYS = (
    "loss",
    "teacher_entropy",
    "teacher_batch_entropy",
    "student_entropy",
    "center_norm",
    "stop",
)


def _build_state(cfg: DinoConfig, rt: Runtime) -> TrainingState:
    seed_everything(cfg.train.seed)
    student = build_model(cfg).to(rt.device)
    no_drop = cfg.model_copy(update={"model": cfg.model.model_copy(update={"drop_path_rate": 0.0})})
    teacher = make_teacher(student, build_model(no_drop).to(rt.device))
    student, teacher = sync_batchnorms(student, rt), sync_batchnorms(teacher, rt)
    loss = DINOLoss(
        cfg.head.out_dim,
        student_temp=cfg.loss.student_temp,
        center_momentum=cfg.loss.center_momentum,
        centering=cfg.loss.centering,
        sk_iterations=cfg.loss.sk_iterations,
    ).to(rt.device)
    ibot = None
    if cfg.loss.ibot_weight > 0:
        ibot = IBOTPatchLoss(
            cfg.patch_out_dim(),
            student_temp=cfg.ibot.student_temp,
            center_momentum=cfg.ibot.center_momentum,
            centering=cfg.loss.centering,
            sk_iterations=cfg.loss.sk_iterations,
        ).to(rt.device)
    optimizer = build_optimizer(cfg.optim, student, rt.device)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=cfg.train.precision == "fp16")
    # the teacher sees the 2 global crops of each image of the rank's share of the batch
    per_rank = 2 * max(cfg.train.batch_size // rt.world_size, 1)
    detector = CollapseDetector(cfg.head.out_dim, 0, cfg.train.collapse_patience_steps, per_rank)
    return TrainingState(cfg, student, teacher, optimizer, loss, scaler, detector, ibot=ibot)


def _reduce_stats(values: torch.Tensor, rt: Runtime) -> list[float]:
    """Mean of the per-rank step statistics (stop flag: any rank); one collective per step."""
    if rt.distributed:
        dist.all_reduce(values)
        values[:-1] /= rt.world_size
    return [float(v) for v in values.tolist()]


def train(
    config: DinoConfig,
    output_dir: str,
    callbacks: Sequence[Callback] = (),
    *,
    resume: bool = True,
) -> TrainResult:
    """Train DINO; returns how the run ended (exceptions other than divergence propagate)."""
    cfg = config
    rt = detect_runtime(cfg.train)
    cbs = CallbackList(callbacks, rank=rt.rank)
    dataset = load_dataset(cfg.data, cfg.data.split)
    loader = build_train_loader(
        cfg, dataset, rank=rt.rank, world_size=rt.world_size, device=rt.device
    )
    spe = len(loader)
    if spe == 0:
        raise ValueError(
            f"data: {len(dataset)} images give no full batch of train.batch_size="
            f"{cfg.train.batch_size}; lower the batch size or use more data"
        )
    sched = Schedules.from_config(cfg, spe)
    st = _build_state(cfg, rt)
    watch_from = cfg.train.collapse_warmup_steps
    if watch_from is None:
        watch_from = max(sched.warmup_steps, sched.temp_warmup_epochs * spe)
    st.detector.warmup_steps = watch_from
    found = load_latest(output_dir) if resume else None
    if found is not None:
        st.restore(found[1])
        restore_rank_rng(found[1], cfg.train.seed, rt)
    else:
        seed_ranks(cfg.train.seed, rt)
    if rt.distributed:
        st.student = nn.parallel.DistributedDataParallel(
            st.student, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
        )
    if cfg.train.compile:
        plan_attention(st.student, cfg, rt.device, rt.world_size)  # auto: decided eagerly
        backbone_of(st.student).compile()
        backbone_of(st.teacher).compile()
    stop_at = min(sched.total_steps, cfg.train.max_steps or sched.total_steps)
    metrics_file = MetricsFile(output_dir, enabled=rt.is_main)
    if rt.is_main:
        write_config(output_dir, cfg)
        metrics_file.truncate_after(st.step)
    cbs.on_train_start(
        RunInfo(
            cfg,
            output_dir,
            sched.total_steps,
            spe,
            st.step,
            sched.epoch(st.step),
            rt.world_size,
            str(rt.device),
        )
    )
    return _loop(st, sched, loader, rt, cbs, metrics_file, output_dir, stop_at)


def _loop(
    st: TrainingState,
    sched: Schedules,
    loader: Any,
    rt: Runtime,
    cbs: CallbackList,
    metrics_file: MetricsFile,
    output_dir: str,
    stop_at: int,
) -> TrainResult:
    cfg = st.config
    ln_k = math.log(cfg.head.out_dim)
    last_ckpt: str | None = None
    metrics: dict[str, float] = {}

    def checkpoint(epoch: int) -> str | None:
        path = None
        rng_ranks = gather_rng_states(rt)
        if rt.is_main:
            cbs.before_checkpoint(st.step)
            payload = st.payload(epoch, metrics)
            if rng_ranks is not None:
                payload["rng_ranks"] = rng_ranks
            path = save_checkpoint(payload, output_dir, st.step, cfg.train.keep_checkpoints)
            cbs.on_checkpoint(CheckpointEvent(path, st.step, epoch))
        if rt.distributed:
            dist.barrier()
        return path

    def end(status: RunStatus, epoch: int, **kw: Any) -> TrainResult:
        res = TrainResult(status, st.step, epoch, dict(metrics), last_ckpt, **kw)
        cbs.on_train_end(
            EndEvent(
                status,
                st.step,
                epoch,
                dict(metrics),
                last_ckpt,
                {k: v for k, v in kw.items() if v is not None},
            )
        )
        return res

    stopped = False
    while st.step < stop_at and not stopped:
        epoch = sched.epoch(st.step)
        epoch_sums: dict[str, float] = {}
        n_in_epoch = 0
        t_prev = time.perf_counter()
        st.student.train()
        st.teacher.train()
        for crops in loader.epoch(epoch, st.step - epoch * sched.steps_per_epoch):
            vals = sched.values(st.step)
            set_schedule(st.optimizer, vals["lr"], vals["wd"])
            out = step_loss(st, crops, vals["teacher_temp"], st.step, rt)
            stats, loss = out.stats, out.loss
            stop_flag = torch.tensor(
                1.0 if (rt.is_main and cbs.should_stop()) else 0.0, device=loss.device
            )
            reduced = _reduce_stats(
                torch.stack(
                    [
                        loss.detach().float(),
                        stats["teacher_entropy"],
                        stats["teacher_batch_entropy"],
                        stats["student_entropy"],
                        stats["center_norm"],
                        *out.terms.values(),
                        stop_flag,
                    ]
                ),
                rt,
            )
            keys = (*_STAT_KEYS[:-1], *out.terms, _STAT_KEYS[-1])
            values = dict(zip(keys, reduced, strict=True))
            if not math.isfinite(float(loss.detach())) or not math.isfinite(values["loss"]):
                return end(
                    RUN_DIVERGED,
                    epoch,
                    error=f"loss is {values['loss']} at step {st.step + 1}; "
                    f"the last good checkpoint is kept",
                    detail={"step": st.step + 1},
                )
            st.optimizer.zero_grad(set_to_none=True)
            st.scaler.scale(loss).backward()
            st.scaler.unscale_(st.optimizer)
            clip_per_parameter(st.student, cfg.optim.clip_grad)
            if sched.last_layer_frozen(st.step):
                drop_last_layer_grads(st.student)
            st.scaler.step(st.optimizer)
            st.scaler.update()
            ema_update(st.teacher, st.student, vals["momentum"])
            st.step += 1
            now = time.perf_counter()
            dino = values.get("loss_dino", values["loss"])  # the DINO term alone
            metrics = {
                **{k: values[k] for k in keys if k != "stop"},
                **{k: vals[k] for k in ("lr", "wd", "momentum", "teacher_temp")},
                "kl": dino - values["teacher_entropy"],
                "loss_minus_lnK": dino - ln_k,
                "images_per_s": cfg.train.batch_size / max(now - t_prev, 1e-9),
                "epoch": float(epoch),
            }
            t_prev = now
            n_in_epoch += 1
            for k, v in metrics.items():
                epoch_sums[k] = epoch_sums.get(k, 0.0) + v
            metrics_file.write(st.step, metrics)
            cbs.on_step_end(StepEvent(st.step, epoch, metrics))
            collapse = st.detector.update(
                st.step, values["teacher_entropy"], values["teacher_batch_entropy"], metrics["kl"]
            )
            if collapse is not None:
                cbs.on_collapse(CollapseEvent(collapse[0], st.step, collapse[1]))
                if cfg.train.collapse_action == "stop":
                    last_ckpt = checkpoint(epoch) or last_ckpt
                    return end(RUN_COLLAPSED, epoch, collapse={"kind": collapse[0], **collapse[1]})
                st.detector.history.clear()
            every = cfg.train.checkpoint_every_steps
            at_epoch_end = st.step % sched.steps_per_epoch == 0
            if every and st.step % every == 0 and not at_epoch_end:
                last_ckpt = checkpoint(epoch) or last_ckpt
            stopped = values["stop"] > 0
            if stopped or st.step >= stop_at:
                if not at_epoch_end:
                    last_ckpt = checkpoint(epoch) or last_ckpt
                    return end(RUN_STOPPED if stopped else RUN_SUCCEEDED, epoch)
                break
        last_ckpt = checkpoint(epoch + 1) or last_ckpt
        epoch_metrics = {f"epoch_{k}": v / max(n_in_epoch, 1) for k, v in epoch_sums.items()}
        cbs.on_epoch_end(
            EpochEvent(
                epoch,
                st.step,
                epoch_metrics,
                teacher=backbone_of(st.teacher),
                student=backbone_of(st.student),
            )
        )
        if stopped and st.step < stop_at:
            return end(RUN_STOPPED, epoch + 1)
    return end(RUN_SUCCEEDED, sched.epoch(max(st.step - 1, 0)) + 1)
