"""ConvNet backbones for small images: the stem stride option and channels-last numerics."""

from __future__ import annotations

import pytest
import torch

from dino_core.config import ConfigError, ModelConfig, build_config
from dino_core.models import build_backbone, build_model
from tests.tiny import tiny_vit


def _feature_side(arch: str, stem_stride: int | None, size: int = 28) -> int:
    model, _ = build_backbone(ModelConfig(arch=arch, in_chans=1, stem_stride=stem_stride), size)
    model.eval()  # BatchNorm in training mode refuses a 1x1 map of one image
    with torch.no_grad():
        return int(model.forward_features(torch.zeros(1, 1, size, size)).shape[-1])


@pytest.mark.parametrize("arch", ["resnet10t", "resnet18"])
def test_stem_stride_sets_the_final_feature_map(arch: str) -> None:
    # timm's stem reduces by 4 and the four stages by 8 more: 28 px -> 1x1 at the end
    assert _feature_side(arch, None) == 1
    assert _feature_side(arch, 4) == 1
    assert _feature_side(arch, 2) == 2  # 28 -> 14 -> ... -> 2
    assert _feature_side(arch, 1) == 4  # 28 -> 28 -> ... -> 4 (SimCLR's CIFAR variant)


def test_stride_one_makes_a_7x7_stem_the_cifar_3x3() -> None:
    model, _ = build_backbone(ModelConfig(arch="resnet18", in_chans=1, stem_stride=1), 32)
    assert isinstance(model.conv1, torch.nn.Conv2d)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    deep, _ = build_backbone(ModelConfig(arch="resnet10t", in_chans=1, stem_stride=1), 32)
    first = deep.conv1[0]
    assert first.kernel_size == (3, 3) and first.stride == (1, 1)


def test_stem_stride_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"model\.stem_stride.*ConvNet backbones only"):
        build_config({"model": {"arch": "vit_custom", "stem_stride": 2}})
    with pytest.raises(ConfigError, match=r"model\.stem_stride"):
        build_config({"model": {"arch": "resnet18", "stem_stride": 3}})
    with pytest.raises(ConfigError, match=r"model\.stem_stride=2 needs a ResNet-style"):
        build_backbone(ModelConfig(arch="convnext_atto", stem_stride=2), 32)


def _resnet_cfg(channels_last: bool):  # type: ignore[no-untyped-def]
    return build_config(
        {
            "model": {"arch": "resnet10t", "in_chans": 1, "stem_stride": 2,
                      "channels_last": channels_last, "drop_path_rate": 0.0},
            "head": {"out_dim": 64, "hidden_dim": 32, "bottleneck_dim": 16},
            "crops": {"global_size": 28, "local_size": 12, "local_number": 2},
        }
    )  # fmt: skip


def test_channels_last_matches_contiguous_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    ref = build_model(_resnet_cfg(False))
    nhwc = build_model(_resnet_cfg(True))
    nhwc.load_state_dict(ref.state_dict())
    # (a 1-channel first conv is contiguous in both formats: look at a 64-channel one)
    conv = nhwc.backbone.layer1[0].conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not ref.backbone.layer1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    crops = [torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28), torch.randn(4, 1, 12, 12)]
    out_ref, out_nhwc = ref(crops), nhwc(crops)
    # same maths, another summation order: fp32 rounding only
    torch.testing.assert_close(out_nhwc, out_ref, rtol=1e-4, atol=1e-5)
    out_ref.square().sum().backward()
    out_nhwc.square().sum().backward()
    for (name, p_ref), p_nhwc in zip(ref.named_parameters(), nhwc.parameters(), strict=True):
        if not p_ref.requires_grad:  # the weight-norm scale fixed to 1
            continue
        assert p_ref.grad is not None and p_nhwc.grad is not None, name
        # element-wise relative error is unbounded where a gradient entry is a near-cancelling
        # sum (the 1-channel stem's): bound the error by the tensor's own scale instead
        scale = float(p_ref.grad.abs().max())
        torch.testing.assert_close(p_nhwc.grad, p_ref.grad, rtol=0, atol=1e-4 * scale, msg=name)


def test_vit_ignores_channels_last() -> None:
    cfg = build_config(
        {
            "model": tiny_vit(in_chans=1),
            "head": {"out_dim": 16, "hidden_dim": 16, "bottleneck_dim": 8},
            "crops": {"global_size": 16, "local_size": 8},
        }
    )
    assert cfg.model.channels_last and not build_model(cfg).channels_last
