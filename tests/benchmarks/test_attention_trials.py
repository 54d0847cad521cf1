"""The attention-trials benchmark trains each trial, then scores random init and every
checkpoint: mask IoU, precision/recall, object share against chance, k-NN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchmarks.attention_trials import main
from tests.tiny import tiny_vit

PRESET = {
    "model": tiny_vit(),
    "head": {"out_dim": 16, "hidden_dim": 32, "bottleneck_dim": 16},
    "crops": {"global_size": 16, "local_number": 0, "pipeline": "batched"},
    "data": {"dataset": "synthetic", "synthetic_size": 48, "synthetic_image_size": 16},
    "optim": {"warmup_epochs": 0},
    "loss": {"warmup_teacher_temp_epochs": 0},
    "train": {"epochs": 1, "batch_size": 16, "threads": 1},
}


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_rows_per_checkpoint_with_random_init_first(tmp_path: Path) -> None:
    preset = write(tmp_path / "preset.yaml", PRESET)
    trials = write(tmp_path / "trials.yaml", {"base": [], "reg": ["model.num_registers=1"]})
    out = tmp_path / "rows.jsonl"
    args = ["--trials", str(trials), "--preset", str(preset), "--minutes", "5", "--every", "2"]
    main([*args, "--memory", "32", "--test", "16", "--only", "reg", "--out", str(out)])
    main([*args, "--workdir", str(tmp_path / "w"), "--out", str(out), "--only", "base"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_trial = {t: [r for r in rows if r["trial"] == t] for t in ("reg", "base")}
    for got in by_trial.values():
        assert [r["step"] for r in got] == [0, 2, 3]  # 48 images / 16 = 3 steps: ends at 3
        assert got[0]["model"] == "random_init" and {r["model"] for r in got[1:]} == {"teacher"}
        for r in got:
            assert len(r["iou_per_head"]) == len(r["object_share_per_head"]) == 2
            assert r["best_head_iou"] == max(r["iou_per_head"])
            for key in ("mean_map_iou", "best_head_precision", "best_head_recall", "object_area"):
                assert 0.0 <= r[key] <= 1.0
            assert 0.0 <= r["knn_top1"] <= 100.0 and r["machine"]["cpu"]
    assert by_trial["reg"][0]["overrides"] == ["model.num_registers=1"]


def test_unknown_trial_names_are_refused(tmp_path: Path) -> None:
    trials = write(tmp_path / "trials.yaml", {"base": []})
    with pytest.raises(SystemExit, match=r"--only names trials not in .*\['nope'\]"):
        main(["--trials", str(trials), "--only", "nope"])


def test_ceilings_order_the_reference_maps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.attention_trials as bench

    preset = write(tmp_path / "preset.yaml", PRESET)
    written: dict[str, dict[str, object]] = {}
    monkeypatch.setattr(bench, "write_json", lambda name, res: written.setdefault(name, res))
    main(["--ceilings", "--preset", str(preset), "--test", "24"])
    res = written["attention_ceilings_preset"]
    assert res["images"] == 24 and res["patch_size"] == 4
    refs = [float(res[k]) for k in ("uniform", "object_patches", "object_fraction")]  # type: ignore[arg-type]
    # the best set of whole patches beats every patch mask, and a map that follows the object
    # beats one that ignores it
    assert float(res["oracle_patch_mask"]) >= max(refs)  # type: ignore[arg-type]
    assert refs[2] > refs[0] and refs[1] > refs[0]
