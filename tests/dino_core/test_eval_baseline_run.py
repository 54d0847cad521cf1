"""The grid's baseline job scores exactly what each k-NN evaluation scored beside its
checkpoint: raw pixels once, random init at each seed from the same weights."""

from __future__ import annotations

from pathlib import Path

import torch

from dino_core.checkpoint import save_checkpoint
from dino_core.eval.baseline_run import run_knn_baselines
from dino_core.eval.baselines import random_init_backbone
from dino_core.eval.metric_names import knn_metric
from dino_core.eval.run import run_knn_eval
from dino_core.models import build_model
from tests.dino_core.conftest import tiny_config


def _checkpoint(seed: int, where: Path) -> str:
    cfg = tiny_config(**{"train.seed": seed})
    torch.manual_seed(100 + seed)  # trained weights other than the random init of the seed
    student, teacher = build_model(cfg), build_model(cfg)
    state = {"config": cfg.to_dict(), "student": student.state_dict(),
             "teacher": teacher.state_dict(), "step": 1, "epoch": 1}  # fmt: skip
    return save_checkpoint(state, str(where), step=1, keep=1)


def test_baselines_once_equal_the_baselines_of_every_knn_eval(tmp_path: Path) -> None:
    ks = [5, 20]
    base = run_knn_baselines(
        tiny_config(), seeds=[0, 1], ks=ks, device="cpu", out_dir=tmp_path / "baselines"
    )
    assert base["settings"]["seeds"] == [0, 1]
    assert set(base["results"]) == {"raw_pixels", "random_init_seed0", "random_init_seed1"}
    assert (tmp_path / "baselines" / "knn_baselines.json").is_file()
    got = base["metrics"]
    for seed in (0, 1):
        per_job = run_knn_eval(
            _checkpoint(seed, tmp_path / f"run{seed}"), ks=ks, device="cpu",
            out_dir=tmp_path / f"eval{seed}",
        )["metrics"]  # fmt: skip
        for k in ks:
            for acc in ("top1", "top5"):
                assert (
                    got[knn_metric(acc, k, "random_init", seed)]
                    == per_job[knn_metric(acc, k, "random_init")]
                )
                assert (
                    got[knn_metric(acc, k, "raw_pixels")]
                    == per_job[knn_metric(acc, k, "raw_pixels")]
                )


def test_random_init_at_a_seed_is_the_run_of_that_seed() -> None:
    cfg = tiny_config(**{"train.seed": 1})

    def weights(model: torch.nn.Module) -> torch.Tensor:
        return torch.cat([p.flatten() for p in model.state_dict().values()])

    assert torch.equal(weights(random_init_backbone(cfg)), weights(random_init_backbone(cfg, 1)))
    assert not torch.equal(
        weights(random_init_backbone(cfg, 0)), weights(random_init_backbone(cfg))
    )


def test_default_seed_is_the_configs_own(tmp_path: Path) -> None:
    out = run_knn_baselines(tiny_config(**{"train.seed": 7}), device="cpu", out_dir=tmp_path)
    assert out["settings"] == {"ks": [20], "temperature": 0.07, "seeds": [7]}
    assert set(out["metrics"]) == {
        "knn_top1_k20_raw_pixels", "knn_top5_k20_raw_pixels",
        "knn_top1_k20_random_init_seed7", "knn_top5_k20_random_init_seed7",
    }  # fmt: skip
