"""The options of each evaluation runner as typed models, to check them before a run.

One model per runner of :mod:`dino_core.eval.run` (``knn``, ``linear``, ``attention``) and
of the grid's baseline job (``baselines``, :mod:`dino_core.eval.baseline_run`): its keyword
arguments but the checkpoint (or config) and the output directory, with the same defaults and
bounds on what a run can use (``tests/dino_core/test_eval_options.py`` holds them to the
runners' signatures). No torch here: the job API imports it to refuse a typo at submit time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dino_core.config import DatasetName

FIXED_ARGUMENTS = frozenset({"checkpoint", "config", "out_dir"})  # set by whoever runs it
Positive = Annotated[int, Field(ge=1)]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class DataOptions(_Options):
    """Evaluate on other data than the checkpoint's config names (None = keep it); the
    fields of :class:`dino_core.eval.run.DataOverrides`."""

    dataset: DatasetName | None = None
    root: str | None = Field(None, max_length=4096, description="dataset directory")
    split: str | None = Field(None, max_length=100, description="memory / probe-training split")
    eval_split: str | None = Field(None, max_length=100, description="query / test split")
    limit: Positive | None = Field(None, description="first N images of each split")


class _Scoring(_Options):
    data: DataOptions | None = None
    device: str = Field("auto", min_length=1, max_length=32, description="auto, cpu, cuda:0")
    progress: bool = False


class _Common(_Scoring):
    which: Literal["teacher", "student"] = "teacher"
    baselines: bool = Field(True, description="also score random-init (and raw-pixel) models")


class _KnnSettings(_Options):
    ks: list[Positive] | None = Field(None, min_length=1, max_length=16)
    temperature: float | None = Field(None, gt=0)
    batch_size: Positive = 256


class KnnOptions(_Common, _KnnSettings):
    """Weighted k-NN (paper Sec. 4.1); None = the checkpoint's ``eval.knn_k`` (paper 20) and
    ``eval.knn_temperature`` (paper 0.07). In a grid, ``baselines`` means: score them once
    for the grid (the ``baselines`` job), not in each k-NN job."""


class LinearOptions(_Common):
    """Linear probe on frozen features (paper Sec. 4.1)."""

    n_last_blocks: Positive | None = Field(None, description="None = 4 for ViTs (paper ViT-S)")
    avgpool_patchtokens: bool = False
    epochs: Positive = 100
    lr: float = Field(0.001, gt=0)
    probe_batch_size: Positive = 256
    seed: int | None = Field(None, description="None = the checkpoint's train.seed")
    batch_size: Positive = 256


class AttentionOptions(_Common):
    """Attention maps (paper Figs. 1, 3) and, with object masks, their IoU."""

    threshold: float | None = Field(None, gt=0, le=1, description="mass kept, paper 0.6")
    num_images: Positive = 8
    batch_size: Positive = 64


class BaselinesOptions(_Scoring, _KnnSettings):
    """The k-NN baselines of a grid (:mod:`dino_core.eval.baseline_run`): raw pixels once,
    random init once per seed; the other fields are the grid's k-NN options."""

    seeds: list[int] | None = Field(None, min_length=1, description="None = train.seed")


EVAL_OPTIONS: dict[str, type[BaseModel]] = {
    "knn": KnnOptions,
    "linear": LinearOptions,
    "attention": AttentionOptions,
    "baselines": BaselinesOptions,
}


def option_problems(kind: str, err: ValidationError) -> list[tuple[str, str, str]]:
    """``(option path, message, type)`` of each error of ``kind``'s options (``ks.0``); an
    unknown option names the valid ones."""
    model = EVAL_OPTIONS[kind.removeprefix("eval_")]
    out = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            valid = ", ".join(model.model_fields)
            msg = f"{kind} has no option {path!r}: its options are {valid}"
        out.append((path, msg, str(e["type"])))
    return out
