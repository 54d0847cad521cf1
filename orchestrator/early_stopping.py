"""The grid field ``early_stopping``: successive halving at rung epochs, checked at submit.

Successive halving (Jamieson & Talwalkar 2016, "Non-stochastic Best Arm Identification and
Hyperparameter Optimization") in the asynchronous form of ASHA (Li et al. 2020, "A System for
Massively Parallel Hyperparameter Tuning"): every run trains to the first rung epoch and
pauses; the grid's combinations are ranked on the mean of their seeds' ``metric`` at that
epoch; the best ``1 / reduction_factor`` (at least one) train on to the next rung, resuming
from their checkpoints; the others end STOPPED_EARLY. Combinations that reach a rung later
(an extended grid) are ranked against every value recorded at that rung, as ASHA does.
The decisions are made by :mod:`orchestrator.rung_decisions`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from dino_core.config import DinoConfig
from orchestrator.errors import FieldError

EarlyStoppingMetric = Literal["knn_top1", "loss"]
HIGHER_IS_BETTER: dict[EarlyStoppingMetric, bool] = {"knn_top1": True, "loss": False}
FIELD = "early_stopping"


class EarlyStopping(BaseModel):
    """What a grid's ``early_stopping`` field holds."""

    model_config = ConfigDict(extra="forbid")

    metric: EarlyStoppingMetric = Field(
        "knn_top1",
        description="knn_top1: the epoch k-NN of the teacher (eval.knn_every_epochs must "
        "measure it at every rung; higher is better); loss: the epoch's mean loss (lower)",
    )
    rungs: list[StrictInt] | None = Field(
        None,
        description="epochs at which runs are ranked, ascending, each before the last epoch; "
        "None = min_epochs x reduction_factor^k below train.epochs",
    )
    reduction_factor: int = Field(
        3, ge=2, le=16, description="keep the best 1/eta at each rung (Li et al. 2018, eta=3)"
    )
    min_epochs: int = Field(1, ge=1, description="no combination is stopped before this epoch")

    def rungs_for(self, epochs: int) -> list[int]:
        """The rung epochs of a run of ``epochs`` epochs (explicit, or the geometric ladder)."""
        if self.rungs is not None:
            return list(self.rungs)
        out, r = [], self.min_epochs
        while r < epochs:
            out.append(r)
            r *= self.reduction_factor
        return out

    def next_rung(self, epochs: int, after: int | None) -> int | None:
        """The first rung after epoch ``after`` (None: the first), or None: train to the end."""
        later = [r for r in self.rungs_for(epochs) if after is None or r > after]
        return later[0] if later else None

    def metric_key(self, cfg: DinoConfig) -> str:
        """The epoch metric the worker reports at a rung (:mod:`worker.rung_stop`)."""
        return f"knn_top1_k{cfg.eval.knn_k}" if self.metric == "knn_top1" else "epoch_loss"

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]


def check_early_stopping(
    es: EarlyStopping, configs: list[tuple[str, DinoConfig]]
) -> list[FieldError]:
    """Every rung of every combination (``(label, config)``) is a measured epoch before its
    last: ascending, at least ``min_epochs``, and on the k-NN schedule for ``knn_top1``."""
    errors: list[FieldError] = []
    if es.rungs is not None:
        if not es.rungs:
            message = "rungs is empty: give at least one epoch, or leave rungs out"
            errors.append(FieldError(field=f"{FIELD}.rungs", message=message))
        for i, r in enumerate(es.rungs):
            if i and r <= es.rungs[i - 1]:
                message = f"rung {r} is not after rung {es.rungs[i - 1]}: list rungs ascending"
                errors.append(FieldError(field=f"{FIELD}.rungs.{i}", message=message))
            elif r < es.min_epochs:
                message = (
                    f"rung {r} is before min_epochs {es.min_epochs}: raise it or lower min_epochs"
                )
                errors.append(FieldError(field=f"{FIELD}.rungs.{i}", message=message))
    for label, cfg in configs:
        errors += _check_config(es, label, cfg)
    first: dict[str, FieldError] = {}
    for e in errors:
        first.setdefault(e.field, e)
    return list(first.values())


def _check_config(es: EarlyStopping, label: str, cfg: DinoConfig) -> list[FieldError]:
    epochs = cfg.train.epochs
    rungs = es.rungs_for(epochs)

    def where(i: int) -> str:
        return f"{FIELD}.rungs.{i}" if es.rungs is not None else f"{FIELD}.min_epochs"

    if not rungs:
        message = (
            f"min_epochs {es.min_epochs} is not before the last epoch {epochs} of {label} "
            "(train.epochs): lower min_epochs or train longer"
        )
        return [FieldError(field=f"{FIELD}.min_epochs", message=message)]
    errors = []
    every = cfg.eval.knn_every_epochs
    if es.metric == "knn_top1" and every == 0:
        message = (
            f"metric knn_top1 is never measured during training in {label} "
            "(eval.knn_every_epochs is 0): set eval.knn_every_epochs, or use metric: loss"
        )
        return [FieldError(field=f"{FIELD}.metric", message=message)]
    for i, r in enumerate(rungs):
        if r >= epochs:
            message = (
                f"rung {r} is not before the last epoch {epochs} of {label} (train.epochs): "
                "use rungs below it"
            )
            errors.append(FieldError(field=where(i), message=message))
        elif es.metric == "knn_top1" and r % every:
            message = (
                f"the k-NN is measured every {every} epochs in {label} (eval.knn_every_epochs), "
                f"not at rung {r}: use multiples of {every} or set eval.knn_every_epochs"
            )
            errors.append(FieldError(field=where(i), message=message))
    return errors
