"""ConvNet backbones for small images: the stem stride option and channels-last numerics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

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


# bf16 autocast on a channels-last ResNet against the same weights in fp32. Every convolution
# and linear layer rounds its inputs to bf16 (8 significant bits, 2^-9 relative); BatchNorm's
# backward subtracts the batch means of its incoming gradient, a near-cancelling sum that turns
# that rounding into a far larger error per backbone parameter. Measured on an AMD EPYC (Zen 4,
# AVX512-BF16), torch 2.14: outputs 1.8e-2 relative, head gradients <= 1.8e-2, backbone
# gradients 0.21 relative (per parameter cosine >= 0.95) in *both* memory formats. The bounds:
BF16_OUT_TOLERANCE = 5e-2  # ||out_bf16 - out_fp32|| / ||out_fp32||
BF16_GRAD_COSINE = 0.9  # per parameter: the bf16 gradient still points the fp32 way
NHWC_ERROR_RATIO = 1.5  # channels-last bf16 error / contiguous bf16 error (measured 1.00)


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.detach().float() - ref.detach().float()).norm() / ref.detach().float().norm())


def _bf16_run(model: torch.nn.Module, crops: list[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(crops)
    assert out.dtype == torch.bfloat16  # the network really ran in bf16
    (out.float() * w).sum().backward()
    return out


def _backbone_grad(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.backbone.parameters() if p.grad is not None])


def test_bf16_channels_last_resnet_tracks_fp32_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    ref = build_model(_resnet_cfg(False))
    nhwc, nchw = build_model(_resnet_cfg(True)), build_model(_resnet_cfg(False))
    nhwc.load_state_dict(ref.state_dict())
    nchw.load_state_dict(ref.state_dict())
    crops = [torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28), torch.randn(4, 1, 12, 12)]
    out_ref = ref(crops)
    w = torch.randn_like(out_ref)  # a random linear loss: every output direction counts
    (out_ref * w).sum().backward()
    out_low = _bf16_run(nhwc, crops, w)
    _bf16_run(nchw, crops, w)
    assert _rel(out_low, out_ref) < BF16_OUT_TOLERANCE
    for (name, p_ref), p_low in zip(ref.named_parameters(), nhwc.parameters(), strict=True):
        if not p_ref.requires_grad:  # the weight-norm scale fixed to 1
            continue
        assert p_ref.grad is not None and p_low.grad is not None, name
        assert p_low.dtype == p_low.grad.dtype == torch.float32, name  # fp32 master weights
        if float(p_ref.grad.norm()) == 0.0:  # zero-initialised last BN of a residual branch
            continue
        cos = F.cosine_similarity(p_low.grad.flatten(), p_ref.grad.flatten(), dim=0)
        assert float(cos) >= BF16_GRAD_COSINE, (name, float(cos))
    ref_grad = _backbone_grad(ref)
    err_nhwc = _rel(_backbone_grad(nhwc), ref_grad)
    err_nchw = _rel(_backbone_grad(nchw), ref_grad)
    assert err_nhwc <= NHWC_ERROR_RATIO * err_nchw, (err_nhwc, err_nchw)
    for (name, b_ref), b_low in zip(ref.named_buffers(), nhwc.buffers(), strict=True):
        assert b_low.dtype == b_ref.dtype, name  # running statistics stay fp32
        if b_ref.is_floating_point():
            assert _rel(b_low, b_ref) < BF16_OUT_TOLERANCE, name


@pytest.mark.parametrize(("size", "batch"), [(28, 8), (14, 16)])
def test_centre_tap_convs_equal_the_full_convolution(size: int, batch: int) -> None:
    """The 3x3 convolutions that meet 1x1 maps (dino_core/models/center_tap.py) give the
    outputs and gradients of the full convolution, with the same parameters."""
    from dino_core.models.center_tap import CenterTapConv2d, use_full_convolutions

    torch.manual_seed(0)
    cfg = ModelConfig(arch="resnet10t", in_chans=1, stem_stride=4)
    fast, _ = build_backbone(cfg, 28)
    swapped = [m for m in fast.modules() if isinstance(m, CenterTapConv2d)]
    assert len(swapped) >= 4, "the last stages' 3x3 convolutions are centre-tap ones"
    for m in fast.modules():  # timm zero-inits the blocks' last BN: make conv2 count
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    full, _ = build_backbone(cfg, 28)
    assert use_full_convolutions(full) == len(swapped)  # the reference: every one in full
    full.load_state_dict(fast.state_dict())
    assert list(full.state_dict()) == list(fast.state_dict())
    fast, full = (m.to(memory_format=torch.channels_last) for m in (fast, full))
    x = torch.randn(batch, 1, size, size).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(1)  # the same drop-path draws for both
    out_fast = fast(x)
    torch.manual_seed(1)
    out_full = full(x)
    torch.testing.assert_close(out_fast, out_full, rtol=1e-4, atol=1e-4)
    (out_fast**2).sum().backward()
    (out_full**2).sum().backward()
    for (name, a), (_, b) in zip(fast.named_parameters(), full.named_parameters(), strict=True):
        assert a.grad is not None and b.grad is not None, name
        scale = float(b.grad.abs().max()) + 1e-12
        assert float((a.grad - b.grad).abs().max()) <= 1e-4 * scale, name
