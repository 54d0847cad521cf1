"""Validated configuration of one DINO run.

Defaults are the paper's ViT-S/16 recipe (Caron et al. 2021, arXiv 2104.14294, Sec. 3 and
App. A; official code ``main_dino.py``). Each number taken from the paper is named in the
field's description. The components of DINOv2 (Oquab et al. 2023, "DINOv2: Learning Robust
Visual Features without Supervision", arXiv 2304.07193, Sec. 4 and its public
``ssl_default_config.yaml``) are options that default to DINO v1 behaviour: Sinkhorn-Knopp
centering, the KoLeo regulariser, the iBOT masked-patch loss (section ``ibot``), register
tokens, LayerScale, uniform drop path, layer-wise lr decay, the patch-embedding lr multiplier
and the square-root lr scaling rule; their descriptions name DINOv2's value in brackets.
Configs are pydantic v2 models with ``extra="forbid"``: a misspelt key is an error naming the
field path. Sizes have upper bounds well above any published model or recipe (each named in
its description), so a typo such as ``depth: 17607`` is refused when a job is submitted
instead of failing on a worker.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DatasetName = Literal[
    "fashion_mnist", "mnist", "cifar10", "stl10", "image_folder", "synthetic", "shards"
]
Precision = Literal["fp32", "bf16", "fp16"]
OptimizerName = Literal["adamw", "sgd", "lars"]
Centering = Literal["ema", "sinkhorn_knopp"]
LrScaling = Literal["linear", "sqrt"]
# Data sets decoded file by file (no ``images`` tensor): the batched crop pipeline needs one.
LAZY_DATASETS: frozenset[str] = frozenset({"image_folder"})
# ViT attention kernels (dino_core/models/attention.py); auto = measured per shape
AttentionChoice = Literal["auto", "sdpa", "math", "sdpa_fp32", "math_fp32"]


class ConfigError(ValueError):
    """A config that cannot be used; the message names the field and what to do."""


UNKNOWN_FIELD = "unknown field (check the spelling; see configs/ for valid keys)"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class ModelConfig(_Section):
    """Backbone. ``arch`` is a timm name (``vit_small_patch16_224`` …, ``resnet50``) or
    ``vit_custom`` built from the fields below."""

    arch: str = Field("vit_small_patch16_224", description="timm name or 'vit_custom'")
    patch_size: int = Field(
        16, ge=1, le=64, description="ViT patch size (paper: 16 or 8; ViT-H/14 14; max 64)"
    )
    in_chans: int = Field(3, ge=1, le=4)
    embed_dim: int = Field(
        384, ge=8, le=8192, description="vit_custom width (ViT-S: 384; ViT-22B 6144; max 8192)"
    )
    depth: int = Field(
        12, ge=1, le=128, description="vit_custom blocks (ViT-S: 12; ViT-22B 48; max 128)"
    )
    num_heads: int = Field(
        6, ge=1, le=128, description="vit_custom heads (ViT-S: 6; ViT-22B 48; max 128)"
    )
    mlp_ratio: float = Field(
        4.0, gt=0, le=16, description="MLP width / embed_dim (ViT and DINO: 4; max 16)"
    )
    drop_path_rate: float = Field(0.1, ge=0.0, lt=1.0, description="stochastic depth, paper 0.1")
    stem_stride: Literal[1, 2, 4] | None = Field(
        None,
        description="ConvNets only: total stride of the stem. None = the architecture's own "
        "(4 for timm ResNets: strided conv + max-pool); 2 = no max-pool; 1 = the small-input "
        "ResNet of the SSL libraries for 32 px data (3x3 stride-1 first conv, no max-pool)",
    )
    channels_last: bool = Field(
        True,
        description="ConvNets only: NHWC memory format for weights and inputs (faster "
        "convolutions on CPU and GPU; same maths, another summation order). ViTs ignore it",
    )
    num_registers: int = Field(
        0,
        ge=0,
        le=64,
        description="ViT register tokens (timm reg_tokens) [DINOv2 0; Darcet et al. 2023, "
        "'Vision Transformers Need Registers', arXiv 2309.16588: 4]; not patches, so attention "
        "maps and mask scores leave them out",
    )
    layerscale: float | None = Field(
        None,
        gt=0,
        description="ViT LayerScale init (CaiT) [DINOv2 1e-5]; None = no LayerScale (DINO v1)",
    )
    drop_path_uniform: bool = Field(
        False,
        description="ViT: every block drops paths at drop_path_rate [DINOv2 true]; false = "
        "timm's linear rule from 0 at the first block to drop_path_rate at the last (DINO v1)",
    )

    pos_embed: Literal["learn", "sincos"] = Field(
        "learn",
        description="ViT position embeddings: learn = a learned table (DINO v1); sincos = "
        "fixed 2-D sin-cos, frozen (MoCo v3, Chen et al. 2021, arXiv 2104.02057; "
        "dino_core/models/pos_embed.py); needs a width divisible by 4",
    )
    conv_stem: tuple[int, ...] = Field(
        (),
        max_length=8,
        description="vit_custom only: channels of 3x3 stride-1 convolution + BatchNorm + ReLU "
        "layers before the patch projection (Xiao et al. 2021, arXiv 2106.14881, 'Early "
        "Convolutions Help Transformers See Better'; the patch grid is unchanged: "
        "dino_core/models/conv_stem.py); () = the paper's linear patch embedding; at most 8 "
        "layers of 1-1024 channels",
    )

    @property
    def is_vit(self) -> bool:
        """A Vision Transformer (timm ``vit_*`` or ``vit_custom``): it has patches and attention."""
        return self.arch.startswith("vit")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        vit_only = {
            "num_registers": self.num_registers != 0,
            "layerscale": self.layerscale is not None,
            "drop_path_uniform": self.drop_path_uniform,
        }
        for name, used in vit_only.items():
            if used and not self.is_vit:
                raise ValueError(
                    f"model.{name} applies to ViT backbones only (vit_custom, vit_*); "
                    f"{self.arch!r} is a ConvNet: remove model.{name}"
                )
        if self.pos_embed == "sincos" and not self.is_vit:
            raise ValueError(
                f"model.pos_embed=sincos applies to ViT backbones only (vit_custom, vit_*); "
                f"{self.arch!r} has no position embeddings: remove model.pos_embed"
            )
        if self.pos_embed == "sincos" and self.arch == "vit_custom" and self.embed_dim % 4:
            raise ValueError(
                f"model.pos_embed=sincos needs model.embed_dim divisible by 4 (a quarter each "
                f"for sin/cos of column and row), got {self.embed_dim}"
            )
        if self.conv_stem and self.arch != "vit_custom":
            raise ValueError(
                f"model.conv_stem applies to arch 'vit_custom' only, not {self.arch!r}: set "
                "model.arch: vit_custom (with patch_size, embed_dim, depth, num_heads) or remove "
                "model.conv_stem"
            )
        bad = [c for c in self.conv_stem if not 1 <= c <= 1024]
        if bad:
            raise ValueError(
                f"model.conv_stem={list(self.conv_stem)}: every layer needs 1-1024 channels "
                f"(got {bad[0]}); e.g. conv_stem: [32, 64]"
            )
        if self.stem_stride is not None and self.is_vit:
            raise ValueError(
                f"model.stem_stride={self.stem_stride} applies to ConvNet backbones only; "
                f"for {self.arch!r} choose model.patch_size instead (or remove stem_stride)"
            )
        if self.arch == "vit_custom" and self.embed_dim % self.num_heads != 0:
            raise ValueError(
                f"model.embed_dim={self.embed_dim} must be divisible by "
                f"model.num_heads={self.num_heads}"
            )
        return self


class HeadConfig(_Section):
    """DINO projection head (paper Sec. 3.1, App. C)."""

    out_dim: int = Field(
        65536,
        ge=2,
        le=262144,
        description="K, prototypes; paper 65536 for ImageNet (DINOv2 131072; max 2^18)",
    )
    hidden_dim: int = Field(2048, ge=1, le=16384, description="paper 2048 (max 16384)")
    bottleneck_dim: int = Field(256, ge=1, le=4096, description="paper 256 (max 4096)")
    nlayers: int = Field(3, ge=1, le=8, description="paper 3 layers (max 8)")
    use_bn: bool = Field(False, description="paper: no BN in the ViT head")
    norm_last_layer: bool = Field(True, description="weight-norm scale fixed to 1 (official)")


class CropsConfig(_Section):
    """Multi-crop (paper Sec. 3.1): 2 global views and ``local_number`` local views."""

    global_size: int = Field(
        224, ge=4, le=1024, description="paper 224 px (DINOv2 high-res 518; max 1024)"
    )
    global_scale: tuple[float, float] = Field((0.4, 1.0), description="paper 0.4-1.0")
    local_number: int = Field(
        8, ge=0, le=32, description="paper 8 (10 in the best ViT-S run; max 32)"
    )
    local_size: int = Field(96, ge=4, le=1024, description="paper 96 px (max 1024)")
    local_scale: tuple[float, float] = Field((0.05, 0.4), description="paper 0.05-0.4")
    flip_p: float = Field(0.5, ge=0, le=1, description="BYOL-style flip, p 0.5")
    color_jitter: tuple[float, float, float, float] = Field(
        (0.4, 0.4, 0.2, 0.1), description="brightness, contrast, saturation, hue (BYOL)"
    )
    color_jitter_p: float = Field(0.8, ge=0, le=1, description="paper/official p 0.8")
    grayscale_p: float = Field(0.2, ge=0, le=1, description="official p 0.2")
    blur_p: tuple[float, float, float] = Field(
        (1.0, 0.1, 0.5), description="Gaussian blur p for global 1, global 2, locals (official)"
    )
    blur_sigma: tuple[float, float] = Field((0.1, 2.0), description="official radius 0.1-2.0")
    solarize_p: float = Field(0.2, ge=0, le=1, description="solarise p on global 2 (official)")
    noise_sigma: float = Field(
        0.0,
        ge=0,
        le=1,
        description="std of additive Gaussian pixel noise on every view ([0,1] pixels, one "
        "draw per pixel shared by the channels, clipped to [0,1]); not in the paper: 0 = off. "
        "On data with a constant background (Fashion-MNIST's black) it makes the background "
        "differ between views",
    )
    pipeline: Literal["per_image", "batched"] = Field(
        "per_image", description="per-image PIL-like path (official) or batched tensor path"
    )

    @model_validator(mode="after")
    def _scales(self) -> CropsConfig:
        for name in ("global_scale", "local_scale"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(f"crops.{name}={(lo, hi)} must satisfy 0 < low <= high <= 1")
        return self


class LossConfig(_Section):
    """Loss temperatures and centering (paper Sec. 3.1 and App. D)."""

    student_temp: float = Field(0.1, gt=0, description="tau_s, paper 0.1")
    warmup_teacher_temp: float = Field(0.04, gt=0, description="tau_t start, paper 0.04")
    teacher_temp: float = Field(0.07, gt=0, description="tau_t after warm-up, paper 0.04->0.07")
    warmup_teacher_temp_epochs: int = Field(30, ge=0, description="paper 30 epochs")
    center_momentum: float = Field(0.9, ge=0, le=1, description="m of the center EMA, paper 0.9")
    centering: Centering = Field(
        "ema",
        description="teacher targets: 'ema' = softmax((t - c) / tau_t) with the EMA centre c "
        "(DINO v1); 'sinkhorn_knopp' = Sinkhorn-Knopp normalisation of exp(t / tau_t) over "
        "prototypes and samples (SwAV; DINOv2 Sec. 4), the centre then unused and kept",
    )
    sk_iterations: int = Field(3, ge=1, le=1000, description="Sinkhorn-Knopp rounds [DINOv2 3]")
    koleo_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the KoLeo regulariser on the student's global-crop CLS "
        "features (Sablayrolles et al. 2019) [DINOv2 0.1]; 0 = off (DINO v1)",
    )
    ibot_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the iBOT masked-patch loss (Zhou et al. 2022, arXiv 2111.07832; "
        "options in section ibot) [DINOv2 1.0]; 0 = off (DINO v1). ViT backbones only",
    )


class IBOTConfig(_Section):
    """The iBOT masked-patch loss (Zhou et al. 2022; as configured in DINOv2, arXiv
    2304.07193, ``ssl_default_config.yaml``), active when ``loss.ibot_weight > 0``.

    Of each batch's global crops a share ``mask_probability`` is masked, their mask ratios
    spread over ``mask_ratio`` (block-wise masks of BEiT); the student sees masked patches as
    a learned mask token, the teacher sees the crops whole.
    """

    mask_ratio: tuple[float, float] = Field(
        (0.1, 0.5), description="min/max share of masked patches per image [DINOv2 0.1-0.5]"
    )
    mask_probability: float = Field(
        0.5, gt=0, le=1, description="share of global crops masked [DINOv2 0.5]"
    )
    separate_head: bool = Field(
        False, description="own patch head (sizes below) or the DINO head's [DINOv2 false]"
    )
    out_dim: int | None = Field(
        None, ge=2, description="separate head's prototypes; None = head.out_dim [DINOv2 65536]"
    )
    hidden_dim: int | None = Field(
        None, ge=1, description="separate head; None = head.hidden_dim [DINOv2 2048]"
    )
    bottleneck_dim: int | None = Field(
        None, ge=1, description="separate head; None = head.bottleneck_dim [DINOv2 256]"
    )
    nlayers: int | None = Field(
        None, ge=1, description="separate head; None = head.nlayers [DINOv2 3]"
    )
    student_temp: float = Field(0.1, gt=0, description="patch tau_s [DINOv2 0.1]")
    teacher_temp: float | None = Field(
        None,
        gt=0,
        description="patch tau_t; None = the DINO teacher-temperature schedule (DINOv2)",
    )
    center_momentum: float = Field(
        0.9, ge=0, le=1, description="patch centre EMA momentum (centering=ema) [DINOv2 0.9]"
    )

    @model_validator(mode="after")
    def _ratios(self) -> IBOTConfig:
        lo, hi = self.mask_ratio
        if not 0.0 <= lo <= hi <= 1.0 or hi == 0.0:
            raise ValueError(
                f"ibot.mask_ratio={(lo, hi)} must satisfy 0 <= min <= max <= 1 with max > 0 "
                "(DINOv2: [0.1, 0.5])"
            )
        return self


class TeacherConfig(_Section):
    """EMA teacher (paper Sec. 3.1): momentum cosine from ``momentum`` to ``final_momentum``."""

    momentum: float = Field(0.996, ge=0, le=1, description="lambda start, paper 0.996")
    final_momentum: float = Field(1.0, ge=0, le=1, description="lambda end, paper 1.0")


class OptimConfig(_Section):
    """Optimiser (paper App. A / official defaults)."""

    name: OptimizerName = Field("adamw", description="paper AdamW")
    lr: float = Field(0.0005, gt=0, description="base lr per 256 images, paper 0.0005")
    min_lr: float = Field(1e-6, ge=0, description="cosine end, paper 1e-6")
    warmup_epochs: int = Field(10, ge=0, description="linear lr warm-up, paper 10 epochs")
    weight_decay: float = Field(0.04, ge=0, description="cosine start, paper 0.04")
    weight_decay_end: float = Field(0.4, ge=0, description="cosine end, paper 0.4")
    clip_grad: float = Field(3.0, ge=0, description="per-parameter grad-norm clip, paper 3.0")
    freeze_last_layer: int = Field(1, ge=0, description="epochs without last-layer grads, 1")
    sgd_momentum: float = Field(0.9, ge=0, lt=1)
    lr_scaling: LrScaling = Field(
        "linear",
        description="peak lr: 'linear' = lr x batch/256 (DINO v1: lr per 256 images); 'sqrt' "
        "= lr x sqrt(batch/1024) (DINOv2's sqrt_wrt_1024: lr per 1024 images, base 0.004)",
    )
    layerwise_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="ViT layer-wise lr decay: block i of L gets rate^(L-i), the embeddings "
        "rate^(L+1), the final norm and heads 1 [DINOv2 0.9]; 1 = off (DINO v1)",
    )
    patch_embed_lr_mult: float = Field(
        1.0,
        gt=0,
        description="ViT patch-embedding lr multiplier [DINOv2 0.2]; 1 = off (DINO v1)",
    )


class DataConfig(_Section):
    """Where images come from."""

    dataset: DatasetName = "image_folder"
    root: str | None = Field(
        None,
        description="dataset directory; None = default locations. shards: the directory or "
        "URL (s3://bucket/prefix) written by `dino data shard`",
    )
    split: str = Field("train", description="split used for pretraining")
    eval_split: str = Field("test", description="split used as the k-NN query set")
    limit: int | None = Field(None, ge=1, description="first N images only (deterministic)")
    num_workers: int = Field(
        0,
        ge=0,
        le=256,
        description="DataLoader worker processes per rank (max 256: more than the cores of "
        "any one node)",
    )
    shuffle_buffer: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="shards: images in each reader's shuffle buffer (WebDataset-style; larger "
        "mixes more across shards; each reader holds up to that many encoded images; max 10^6)",
    )
    synthetic_size: int = Field(
        2048, ge=1, le=1_000_000, description="synthetic: number of images (max 10^6)"
    )
    synthetic_image_size: int = Field(
        64, ge=8, le=1024, description="synthetic: side in pixels (max 1024)"
    )
    synthetic_classes: int = Field(4, ge=2, le=8, description="synthetic: shape classes")
    synthetic_backgrounds: Literal["mixed", "plain", "textured"] = Field(
        "mixed", description="synthetic: half plain/half textured, or all of one kind"
    )
    synthetic_colors: Literal["random", "fixed"] = Field(
        "random",
        description="synthetic: random object/background colours per image, or one light "
        "object colour on one dark background for all (shape is then the only cue)",
    )


class EvalConfig(_Section):
    """Evaluation during training (weighted k-NN of paper Sec. 4.1: k=20, T=0.07)."""

    knn_every_epochs: int = Field(0, ge=0, description="0 = never during training")
    knn_k: int = Field(20, ge=1, le=10_000, description="paper k=20 (max 10^4)")
    knn_temperature: float = Field(0.07, gt=0, description="paper T=0.07")
    knn_train_limit: int | None = Field(None, ge=1)
    knn_test_limit: int | None = Field(None, ge=1)
    attention_every_epochs: int = Field(0, ge=0, description="0 = never during training")
    attention_threshold: float = Field(0.6, gt=0, le=1, description="mass kept, paper 0.6")


class TrainConfig(_Section):
    """Loop, precision, checkpoints."""

    epochs: int = Field(
        100, ge=1, le=100_000, description="paper 100 (ablations) / 300 / 800 (max 10^5)"
    )
    batch_size: int = Field(
        1024,
        ge=1,
        le=65536,
        description="global batch; paper 1024 for ViT-S (max 65536, 2x the largest "
        "self-supervised batches, 32768)",
    )
    max_steps: int | None = Field(None, ge=1, description="stop early; schedules unchanged")
    epoch_images: int | None = Field(
        None,
        ge=1,
        le=10**10,
        description="images per epoch for every schedule, whatever the data size: "
        "epoch_images // batch_size steps (DINOv2 fixes its epoch at 1,250 iterations, "
        "OFFICIAL_EPOCH_LENGTH); None = one pass over the data (DINO v1)",
    )
    seed: int = Field(0, ge=0, le=2**63 - 1, description="a 63-bit seed (torch takes 64 bits)")
    precision: Precision = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = Field(False, description="torch.compile the backbone")
    attention: AttentionChoice = Field(
        "auto",
        description="ViT attention kernel: auto = the fastest measured for each shape on this "
        "device and precision (once per process, kept in checkpoints); sdpa = PyTorch's fused "
        "kernel; math = matmul-softmax-matmul in the autocast dtype; sdpa_fp32 / math_fp32 = "
        "the same in fp32 inside bf16/fp16 autocast. ConvNets ignore it",
    )
    log_every_steps: int = Field(10, ge=1)
    checkpoint_every_steps: int = Field(0, ge=0, description="0 = only at epoch ends")
    keep_checkpoints: int = Field(2, ge=1, le=1000, description="keep the last K checkpoints")
    threads: int | None = Field(
        None, ge=1, le=1024, description="torch CPU threads; None = default (max 1024)"
    )
    collapse_patience_steps: int = Field(
        100, ge=1, description="steps a collapse signature must persist after warm-up"
    )
    collapse_warmup_steps: int | None = Field(
        None,
        ge=0,
        description="steps before the collapse detector watches; None = until the lr and "
        "teacher-temperature warm-ups end (their transients are not a collapse); 0 = from "
        "the first step, so a teacher that is flat from the start (no sharpening) is stopped "
        "after collapse_patience_steps instead of after the lr warm-up",
    )
    collapse_action: Literal["stop", "warn"] = Field(
        "stop", description="stop: end the run as COLLAPSED; warn: report and continue"
    )

    @property
    def epoch_steps(self) -> int | None:
        """Steps per schedule epoch fixed by ``epoch_images`` (None: one pass over the data)."""
        return None if self.epoch_images is None else self.epoch_images // self.batch_size

    @model_validator(mode="after")
    def _epoch_holds_a_batch(self) -> TrainConfig:
        if self.epoch_images is not None and self.epoch_images < self.batch_size:
            raise ValueError(
                f"train.epoch_images={self.epoch_images} is smaller than one batch "
                f"(train.batch_size={self.batch_size}): give at least {self.batch_size} images "
                "per epoch, or null for one pass over the data"
            )
        return self


class DinoConfig(_Section):
    """A whole DINO run."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    crops: CropsConfig = Field(default_factory=CropsConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    ibot: IBOTConfig = Field(default_factory=IBOTConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _cross_field(self) -> DinoConfig:
        if self.model.is_vit:
            p = self.model_patch_size()
            for name in ("global_size", "local_size"):
                size = getattr(self.crops, name)
                if size % p != 0:
                    raise ValueError(
                        f"crops.{name}={size} is not divisible by the patch size {p}: "
                        f"choose a multiple of {p}"
                    )
        if self.optim.warmup_epochs > self.train.epochs:
            raise ValueError(
                f"optim.warmup_epochs={self.optim.warmup_epochs} exceeds "
                f"train.epochs={self.train.epochs}"
            )
        if self.loss.warmup_teacher_temp_epochs > self.train.epochs:
            raise ValueError(
                f"loss.warmup_teacher_temp_epochs={self.loss.warmup_teacher_temp_epochs} "
                f"exceeds train.epochs={self.train.epochs}"
            )
        vit_only = {
            "loss.ibot_weight": self.loss.ibot_weight > 0,
            "optim.layerwise_decay": self.optim.layerwise_decay != 1.0,
            "optim.patch_embed_lr_mult": self.optim.patch_embed_lr_mult != 1.0,
        }
        for name, used in vit_only.items():
            if used and not self.model.is_vit:
                raise ValueError(
                    f"{name} needs a ViT backbone (patch tokens and transformer blocks); "
                    f"model.arch={self.model.arch!r} is a ConvNet: choose a ViT (vit_custom, "
                    f"vit_*) or set {name} back to its DINO v1 default"
                )
        if self.teacher.final_momentum < self.teacher.momentum:
            raise ValueError("teacher.final_momentum must be >= teacher.momentum")
        if self.optim.min_lr > self.optim.lr:
            raise ValueError("optim.min_lr must be <= optim.lr")
        if self.crops.pipeline == "batched" and self.data.dataset in LAZY_DATASETS:
            raise ValueError(
                f"crops.pipeline='batched' needs the images in memory, but "
                f"data.dataset={self.data.dataset!r} decodes files one by one: use "
                "crops.pipeline='per_image'"
            )
        return self

    def model_patch_size(self) -> int:
        """Patch size: parsed from a timm name (``..._patch16_...``) or ``model.patch_size``."""
        arch = self.model.arch
        if arch != "vit_custom" and "patch" in arch:
            digits = arch.split("patch", 1)[1].split("_", 1)[0]
            if digits.isdigit():
                return int(digits)
        return self.model.patch_size

    def patch_out_dim(self) -> int:
        """Prototypes of the iBOT patch head: its own with ``ibot.separate_head``, else K."""
        if self.ibot.separate_head and self.ibot.out_dim is not None:
            return self.ibot.out_dim
        return self.head.out_dim

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def config_hash(self) -> str:
        """Stable 12-hex-digit hash of the resolved config (key order independent)."""
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:12]

    def flat(self) -> dict[str, Any]:
        """``{"loss.teacher_temp": 0.07, …}``: for MLflow params and grid tables."""
        return flatten(self.to_dict())


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid DINO config ({source}):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = UNKNOWN_FIELD
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_value(text: str) -> Any:
    """Parse an override value with YAML rules (``0.05``, ``true``, ``[0.4, 1.0]``, ``null``)."""
    return yaml.safe_load(text)


def set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``d["a"]["b"] = value`` for ``"a.b"``; unknown sections are an error."""
    parts = dotted.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override key {dotted!r} is malformed: use section.field")
    node = d
    for i, p in enumerate(parts[:-1]):
        child = node.get(p)
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"override {dotted!r}: {where!r} is not a config section")
        node = child
    node[parts[-1]] = value


def apply_overrides(base: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``base`` with ``key=value`` strings (or a dict) applied."""
    out = json.loads(json.dumps(base))
    items = overrides.items() if isinstance(overrides, dict) else map(split_override, overrides)
    for key, value in items:
        set_dotted(out, key, value)
    return out


def split_override(item: str) -> tuple[str, Any]:
    """``"loss.teacher_temp=0.04"`` -> ``("loss.teacher_temp", 0.04)`` (value parsed as YAML)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} must look like section.field=value")
    try:
        return key.strip(), parse_value(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({err})") from None


def build_config(
    data: dict[str, Any] | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    source: str = "config",
) -> DinoConfig:
    """Validate a (partial) dict plus overrides into a :class:`DinoConfig`."""
    base = DinoConfig().to_dict()
    merged = deep_merge(base, data or {})
    if overrides:
        merged = apply_overrides(merged, overrides)
    try:
        return DinoConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def deep_merge(base: Mapping[str, Any], upd: Mapping[str, Any]) -> dict[str, Any]:
    """``upd`` laid over ``base`` section by section (partial sections keep the rest)."""
    out = dict(base)
    for k, v in upd.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> DinoConfig:
    """Load a YAML file (partial configs are completed with the defaults)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of sections")
    return build_config(data, overrides, source=str(p))
