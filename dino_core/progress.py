"""A terminal progress bar for training: epoch, step, loss, images/s, ETA."""

from __future__ import annotations

from tqdm import tqdm

from dino_core.callbacks import Callback, EndEvent, EpochEvent, RunInfo, StepEvent


class ProgressBar(Callback):
    def __init__(self, max_steps: int | None = None) -> None:
        self.max_steps = max_steps
        self.bar: tqdm | None = None

    def on_train_start(self, info: RunInfo) -> None:
        total = min(info.total_steps, self.max_steps or info.total_steps)
        self.bar = tqdm(total=total, initial=info.start_step, unit="step", dynamic_ncols=True)

    def on_step_end(self, event: StepEvent) -> None:
        if self.bar is None:
            return
        m = event.metrics
        self.bar.set_description(f"epoch {event.epoch}")
        self.bar.set_postfix(
            loss=f"{m['loss']:.4f}",
            img_s=f"{m['images_per_s']:.0f}",
            H_t=f"{m['teacher_entropy']:.2f}",
            refresh=False,
        )
        self.bar.update(1)

    def on_epoch_end(self, event: EpochEvent) -> None:
        if self.bar is not None and event.metrics:
            extra = " ".join(f"{k}={v:.4g}" for k, v in event.metrics.items() if "knn" in k)
            if extra:
                self.bar.write(f"epoch {event.epoch}: {extra}")

    def on_train_end(self, event: EndEvent) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
