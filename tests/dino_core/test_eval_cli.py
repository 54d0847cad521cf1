"""``dino eval knn|linear|attention`` end to end on a tiny checkpoint of synthetic shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dino_core.checkpoint import save_checkpoint
from dino_core.config import DinoConfig, build_config
from dino_core.data import build_eval_transform, load_dataset
from dino_core.eval.run import default_out_dir
from dino_core.eval.suite import attention_mask_report, transformed_masks
from dino_core.eval_cli import app
from dino_core.models import build_model
from tests.tiny import tiny_vit

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_cfg() -> DinoConfig:
    return build_config(
        {
            "model": tiny_vit(num_heads=4),  # 4 heads: the per-head mask scores are counted
            "head": {"out_dim": 16, "hidden_dim": 32, "bottleneck_dim": 16},
            "crops": {"global_size": 16, "local_size": 8, "local_number": 2},
            "data": {"dataset": "synthetic", "synthetic_size": 40, "synthetic_image_size": 16},
            "optim": {"warmup_epochs": 0},
            "loss": {"warmup_teacher_temp_epochs": 0},
            "train": {"epochs": 1, "seed": 3},
        }
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    cfg = tiny_cfg()
    torch.manual_seed(0)
    student, teacher = build_model(cfg), build_model(cfg)
    state = {
        "config": cfg.to_dict(),
        "student": student.state_dict(),
        "teacher": teacher.state_dict(),
        "step": 7,
        "epoch": 1,
    }
    return save_checkpoint(state, str(tmp_path_factory.mktemp("run")), step=7, keep=1)


def invoke(*args: str) -> dict:
    res = runner.invoke(app, [*args, "--no-progress"])
    assert res.exit_code == 0, res.output
    return {"output": res.output}


def test_knn_command_writes_json_with_baselines(checkpoint: str, tmp_path: Path) -> None:
    out = invoke(
        "knn", checkpoint, "--out", str(tmp_path), "--k", "1", "--k", "20", "--limit", "30"
    )["output"]
    for name in ("trained", "random_init", "raw_pixels"):
        assert name in out
    result = json.loads((tmp_path / "knn.json").read_text())
    assert result["n_train"] == 30 and result["n_test"] == 30 and result["num_classes"] == 4
    assert result["settings"] == {"ks": [1, 20], "temperature": 0.07}
    assert set(result["results"]) == {"trained", "random_init", "raw_pixels"}
    for rep in result["results"].values():
        assert rep["k=20"]["k_used"] == 20 and 0.0 <= rep["k=20"]["top1"] <= 100.0
    assert result["metrics"]["knn_top1_k20"] == result["results"]["trained"]["k=20"]["top1"]
    assert "knn_top1_k1_raw_pixels" in result["metrics"]


def test_linear_command(checkpoint: str, tmp_path: Path) -> None:
    invoke(
        "linear",
        checkpoint,
        "--out",
        str(tmp_path),
        "--epochs",
        "3",
        "--limit",
        "24",
        "--which",
        "student",
        "--no-baselines",
    )
    result = json.loads((tmp_path / "linear.json").read_text())
    assert result["which"] == "student" and set(result["results"]) == {"trained"}
    rep = result["results"]["trained"]
    assert result["settings"]["n_last_blocks"] == 2  # min(4, depth 2)
    assert rep["feature_dim"] == 64 and len(rep["history"]) == 3
    assert rep["best_top1"] == max(t for _, t in rep["history"])
    assert result["settings"]["seed"] == 3  # the run's train.seed


def test_attention_command_scores_masks_and_draws_figures(checkpoint: str, tmp_path: Path) -> None:
    out = invoke(
        "attention",
        checkpoint,
        "--out",
        str(tmp_path),
        "--images",
        "3",
        "--limit",
        "12",
        "--threshold",
        "0.5",
    )["output"]
    assert "IoU" in out and "on object" in out and "chance" in out and "plain" in out
    result = json.loads((tmp_path / "attention.json").read_text())
    assert result["settings"]["threshold"] == 0.5 and result["settings"]["has_masks"]
    for name in ("trained", "random_init"):
        entry = result["results"][name]
        assert Path(entry["figure"]).read_bytes()[:8] == PNG_MAGIC
        score = entry["mask_score"]
        assert score["n_images"] == 12 and len(score["per_head"]) == 4
        assert score["best_head_iou"] == max(score["per_head"])
        assert 0.0 <= score["mean_map_iou"] <= 1.0
        assert score["max_object_share"] == max(score["object_share_per_head"])
        for key in ("best_head_precision", "best_head_recall", "object_area"):
            assert 0.0 <= score[key] <= 1.0
        parts = score["by_background"]
        assert parts["plain"]["n_images"] + parts["textured"]["n_images"] == 12


def test_mask_score_follows_the_eval_resize_and_crop() -> None:
    # 24 px images, 16 px model inputs (resize to 18, centre-crop 16): the object masks must
    # go through the same resize/crop to line up with the attention maps.
    cfg = tiny_cfg()
    data_cfg = cfg.data.model_copy(update={"synthetic_size": 6, "synthetic_image_size": 24})
    ds = load_dataset(data_cfg, "test")
    transform = build_eval_transform(ds, cfg)
    assert ds.masks is not None
    masks = transformed_masks(ds.masks, transform)
    assert masks.shape == (6, 16, 16)
    resized = torch.nn.functional.interpolate(
        ds.masks[:, None].float(), size=(18, 18), mode="nearest-exact"
    )[:, 0]
    ref = resized[:, 1:17, 1:17] > 0.5  # the same resize and centre crop, done by hand
    shifted = resized[:, 2:18, 2:18] > 0.5  # misaligned by one pixel
    assert (masks != ref).float().mean() < 0.03  # only edge pixels differ (bicubic vs nearest)
    assert (masks != shifted).float().mean() > 0.06
    torch.manual_seed(0)
    model = build_model(cfg).backbone
    score = attention_mask_report(model, ds, transform, batch_size=4)
    assert score.n_images == 6 and len(score.per_head) == 4


def test_errors_exit_2_with_a_reason(checkpoint: str, tmp_path: Path) -> None:
    res = runner.invoke(app, ["knn", str(tmp_path / "missing.pt"), "--no-progress"])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["knn", checkpoint, "--which", "ema", "--no-progress"])
    assert res.exit_code == 2 and "teacher or student" in res.output
    res = runner.invoke(
        app,
        ["knn", checkpoint, "--eval-split", "validation", "--no-progress", "--out", str(tmp_path)],
    )
    assert res.exit_code == 2 and "validation" in res.output


def test_default_out_dir_is_inside_the_run(checkpoint: str) -> None:
    run_dir = Path(checkpoint).parent.parent
    assert default_out_dir(checkpoint, "teacher") == (
        run_dir.resolve() / "eval" / "checkpoint-00000007-teacher"
    )
    assert default_out_dir("s3://b/run/checkpoints/c.pt", "student") == Path("eval/c-student")


def test_attention_of_a_convnet_says_there_is_none(tmp_path: Path) -> None:
    cfg = build_config(
        {
            "model": {"arch": "resnet10t", "stem_stride": 1, "drop_path_rate": 0.0},
            "head": {"out_dim": 16, "hidden_dim": 32, "bottleneck_dim": 16},
            "crops": {"global_size": 16, "local_size": 8, "local_number": 0},
            "data": {"dataset": "synthetic", "synthetic_size": 8, "synthetic_image_size": 16},
            "optim": {"warmup_epochs": 0},
            "loss": {"warmup_teacher_temp_epochs": 0},
            "train": {"epochs": 1},
        }
    )
    model = build_model(cfg)
    state = {"config": cfg.to_dict(), "student": model.state_dict(),
             "teacher": model.state_dict(), "step": 1, "epoch": 1}  # fmt: skip
    ckpt = save_checkpoint(state, str(tmp_path / "run"), step=1, keep=1)
    out = tmp_path / "attn"
    res = runner.invoke(app, ["attention", ckpt, "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "no attention" in res.output and "ConvNet" in res.output
    written = json.loads((out / "attention.json").read_text())
    assert "ConvNet" in written["not_applicable"] and written["metrics"] == {}
    assert not list(out.glob("*.png"))  # no empty figure
