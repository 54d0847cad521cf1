"""The official-code benchmark refuses a checkout inside this repository, and (where a checkout
is given by DINO_OFFICIAL_DIR) its official step computes what ours computes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from benchmarks.official_step import (
    ENV,
    REPO,
    OfficialCheckoutError,
    import_official,
    official_dir,
    single_process_group,
)
from dino_core.loss import DINOLoss


def test_refuses_a_path_inside_the_repository(tmp_path: Path) -> None:
    for inside in (REPO, REPO / "benchmarks"):
        with pytest.raises(OfficialCheckoutError, match=r"inside this repository.*git clone"):
            official_dir({ENV: str(inside)})


def test_says_how_to_get_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(OfficialCheckoutError, match=r"not set.*git clone https://github.com/"):
        official_dir({})
    with pytest.raises(OfficialCheckoutError, match=r"has no vision_transformer.py, utils.py"):
        official_dir({ENV: str(tmp_path)})


def test_accepts_a_checkout_outside(tmp_path: Path) -> None:
    for name in ("vision_transformer.py", "utils.py", "main_dino.py"):
        (tmp_path / name).write_text("")
    assert official_dir({ENV: str(tmp_path)}) == tmp_path.resolve()


needs_checkout = pytest.mark.skipif(
    not os.environ.get(ENV), reason=f"set {ENV} to a facebookresearch/dino checkout"
)


@needs_checkout
def test_official_loss_equals_ours() -> None:
    off = import_official(official_dir())
    torch.manual_seed(0)
    k, b, ncrops = 64, 4, 6
    student, teacher = torch.randn(ncrops * b, k), torch.randn(2 * b, k)
    theirs = off.main.DINOLoss(k, ncrops, 0.04, 0.04, 0, 1)
    ours = DINOLoss(k)
    with single_process_group(torch.device("cpu")):
        for _ in range(3):  # the centres move identically
            a, c = theirs(student, teacher, 0), ours(student, teacher, 0.04)
            torch.testing.assert_close(c, a, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(ours.center, theirs.center)
            student, teacher = student.roll(1, 0), teacher.roll(1, 0)


@needs_checkout
@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_official_vit_equals_ours_with_the_same_weights(attention: str) -> None:
    """The benchmark's "same model": the official ViT's weights load into ours unchanged and
    give the same CLS features on global crops (the size the position embedding was built for)."""
    from functools import partial

    from dino_core.config import ModelConfig
    from dino_core.models import build_backbone
    from dino_core.models.attention import use_attention

    off = import_official(official_dir())
    torch.manual_seed(0)
    theirs = off.vits.VisionTransformer(
        img_size=[16], patch_size=4, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4,
        qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
    )  # fmt: skip
    cfg = ModelConfig(arch="vit_custom", patch_size=4, embed_dim=32, depth=2, num_heads=2,
                      drop_path_rate=0.0)  # fmt: skip
    ours, _ = build_backbone(cfg, 16)
    use_attention(ours, attention)  # type: ignore[arg-type]
    ours.load_state_dict(theirs.state_dict())
    theirs.eval(), ours.eval()
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
