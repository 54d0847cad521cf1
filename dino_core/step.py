"""One training step's forward passes and loss: DINO alone, or with DINOv2's loss terms.

DINO v1 (paper Algorithm 1): the teacher sees the 2 global crops, the student all crops, and
the loss is :class:`dino_core.loss.DINOLoss`. DINOv2 (Oquab et al. 2023, arXiv 2304.07193,
Sec. 4) adds, each only when its weight is positive, ``koleo_weight x`` the KoLeo estimator
summed over the global crops (:mod:`dino_core.koleo`) and ``ibot_weight x`` the iBOT
masked-patch loss (:mod:`dino_core.ibot`); then the forward passes also return the features
those need, and each term is reported on its own (``loss_dino``, ``loss_koleo``,
``loss_ibot``; ``loss`` is their weighted sum). Without them the step is the v1 step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dino_core.config import DinoConfig
from dino_core.koleo import koleo_per_crop
from dino_core.masking import step_masks
from dino_core.models.wrapper import CropOutputs
from dino_core.monitor import step_statistics
from dino_core.runtime import Runtime, autocast
from dino_core.state import TrainingState

N_GLOBAL = 2  # paper: 2 global crops; the teacher sees only these


@dataclass
class StepLoss:
    loss: torch.Tensor  # what is backpropagated
    stats: dict[str, torch.Tensor]  # teacher/student entropies, centre norm
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # only with KoLeo or iBOT


def has_extra_terms(cfg: DinoConfig) -> bool:
    return cfg.loss.koleo_weight > 0 or cfg.loss.ibot_weight > 0


def step_loss(
    st: TrainingState, crops: list[torch.Tensor], teacher_temp: float, step: int, rt: Runtime
) -> StepLoss:
    """The loss of global step ``step`` on ``crops`` (globals first) at ``teacher_temp``."""
    cfg = st.config
    sk = cfg.loss.centering == "sinkhorn_knopp"
    if not has_extra_terms(cfg):
        with autocast(cfg.train.precision, rt.device):
            with torch.no_grad():
                teacher_out = st.teacher(crops[:N_GLOBAL])
            student_out = st.student(crops)
        targets = st.loss.teacher_targets(teacher_out, teacher_temp) if sk else None
        stats = step_statistics(
            student_out.detach(),
            teacher_out,
            st.loss.center,
            cfg.loss.student_temp,
            teacher_temp,
            targets,
        )
        return StepLoss(st.loss(student_out, teacher_out, teacher_temp, targets), stats)
    masks = _masks(cfg, crops[0], step, rt) if st.ibot is not None else None
    with autocast(cfg.train.precision, rt.device):
        with torch.no_grad():
            t: CropOutputs = st.teacher(crops[:N_GLOBAL], masks, parts=True, mask_input=False)
        s: CropOutputs = st.student(crops, masks, parts=True)
    targets = st.loss.teacher_targets(t.logits, teacher_temp)
    stats = step_statistics(
        s.logits.detach(),
        t.logits,
        st.loss.center,
        cfg.loss.student_temp,
        teacher_temp,
        targets if sk else None,
    )
    dino = st.loss(s.logits, t.logits, teacher_temp, targets)
    terms = {"loss_dino": dino.detach()}
    loss = dino
    if cfg.loss.koleo_weight > 0:
        koleo = koleo_per_crop(s.features, N_GLOBAL)
        loss = loss + cfg.loss.koleo_weight * N_GLOBAL * koleo  # DINOv2: sum over globals
        terms["loss_koleo"] = koleo.detach()
    if st.ibot is not None and masks is not None:
        if t.patch_logits is None or s.patch_logits is None:
            raise RuntimeError("the iBOT loss needs patch outputs: build the model with iBOT on")
        ibot_temp = cfg.ibot.teacher_temp or teacher_temp
        patch_targets = st.ibot.teacher_targets(t.patch_logits, ibot_temp)
        ibot = st.ibot(s.patch_logits, patch_targets, masks)
        if st.ibot.training and not sk:
            st.ibot.update_center(t.patch_logits)
        loss = loss + cfg.loss.ibot_weight * ibot
        terms["loss_ibot"] = ibot.detach()
    return StepLoss(loss, stats, terms)


def _masks(cfg: DinoConfig, first_global: torch.Tensor, step: int, rt: Runtime) -> torch.Tensor:
    """This rank's iBOT masks ``[2 x B, N]`` of step ``step`` (crop-major, as the crops)."""
    p = cfg.model_patch_size()
    grid = (first_global.shape[-2] // p, first_global.shape[-1] // p)
    masks = step_masks(
        cfg.train.seed,
        step,
        rt.rank,
        N_GLOBAL * first_global.shape[0],
        grid,
        cfg.ibot.mask_ratio,
        cfg.ibot.mask_probability,
    )
    return masks.to(rt.device)
