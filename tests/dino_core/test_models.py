"""Head shapes, frozen weight-norm scale, multi-crop forward, EMA teacher, optimiser rules."""

from __future__ import annotations

import re

import pytest
import torch

from dino_core.config import build_config
from dino_core.models import DINOHead, MultiCropWrapper, build_backbone, build_model
from dino_core.optim import clip_per_parameter, drop_last_layer_grads, param_groups
from dino_core.teacher import ema_update, make_teacher
from tests.dino_core.conftest import TINY_VIT


def tiny_cfg(**over: object):  # type: ignore[no-untyped-def]
    data = {
        "model": dict(TINY_VIT),
        "head": {"out_dim": 64, "hidden_dim": 48, "bottleneck_dim": 16},
        "crops": {"global_size": 16, "local_size": 8, "local_number": 2},
        "loss": {"warmup_teacher_temp_epochs": 0},
        "optim": {"warmup_epochs": 0},
        "train": {"epochs": 2, "batch_size": 8},
    }
    return build_config(data, dict(over))


def test_head_shapes_and_frozen_weight_norm_scale() -> None:
    head = DINOHead(32, 100, hidden_dim=64, bottleneck_dim=16, nlayers=3)
    out = head(torch.randn(5, 32))
    assert out.shape == (5, 100)
    g = head.last_layer.parametrizations.weight.original0
    assert torch.all(g == 1.0) and not g.requires_grad
    assert head.last_layer.bias is None
    # with g = 1 every prototype row has unit norm, so |logit| <= 1 for unit-norm inputs
    w = head.last_layer.weight
    assert torch.allclose(w.norm(dim=1), torch.ones(100), atol=1e-5)
    assert out.abs().max() <= 1.0 + 1e-5
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 64), (64, 64), (64, 16)]
    free = DINOHead(32, 10, norm_last_layer=False)
    assert free.last_layer.parametrizations.weight.original0.requires_grad


def test_multicrop_forward_one_pass_per_resolution() -> None:
    cfg = tiny_cfg()
    model = build_model(cfg)
    calls: list[tuple[int, ...]] = []
    model.backbone.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    crops = [torch.randn(3, 3, 16, 16)] * 2 + [torch.randn(3, 3, 8, 8)] * 2
    out = model(crops)
    assert out.shape == (12, 64)
    assert calls == [(6, 3, 16, 16), (6, 3, 8, 8)]
    # rows follow input order: crop 0's rows equal a lone forward of crop 0
    model.eval()
    assert torch.allclose(model(crops)[:3], model(crops[0]), atol=1e-5)


def test_backbone_grayscale_and_unknown_arch() -> None:
    cfg = tiny_cfg(**{"model.in_chans": 1})
    bb, dim = build_backbone(cfg.model, 16)
    assert bb(torch.randn(2, 1, 16, 16)).shape == (2, dim)
    bad = tiny_cfg(**{"model.arch": "not_a_net"})
    with pytest.raises(ValueError, match=re.escape("model.arch")):
        build_backbone(bad.model, 16)


def test_ema_value_and_no_teacher_gradient() -> None:
    torch.manual_seed(0)
    student = MultiCropWrapper(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    teacher = make_teacher(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    t0 = teacher.backbone.weight.clone()
    with torch.no_grad():
        student.backbone.weight.add_(1.0)
    ema_update(teacher, student, 0.9)
    want = 0.9 * t0 + 0.1 * (t0 + 1.0)
    assert torch.allclose(teacher.backbone.weight, want, atol=1e-6)
    ema_update(teacher, student, 1.0)  # momentum 1: frozen teacher
    assert torch.allclose(teacher.backbone.weight, want, atol=1e-6)


def test_param_groups_no_decay_on_bias_and_norms() -> None:
    model = build_model(tiny_cfg())
    decay, no_decay = param_groups(model)
    assert no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith(".bias") or p.ndim == 1 for p in no_decay["params"])
    assert all(p.ndim > 1 for p in decay["params"])
    assert any("norm" in names[id(p)] for p in no_decay["params"])


def test_clip_per_parameter_and_drop_last_layer() -> None:
    model = build_model(tiny_cfg())
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0) if p.requires_grad else None
    clip_per_parameter(model, 3.0)
    for p in model.parameters():
        if p.grad is not None:
            assert p.grad.norm() == pytest.approx(3.0, rel=1e-4)
    drop_last_layer_grads(model)
    assert all(p.grad is None for n, p in model.named_parameters() if "last_layer" in n)
    assert any(p.grad is not None for n, p in model.named_parameters() if "last_layer" not in n)


def test_teacher_keeps_its_own_batchnorm_statistics() -> None:
    """The official ``main_dino.py`` EMA-updates parameters only: the teacher's BatchNorm
    running statistics come from its own train-mode forward passes on the global crops, so
    they describe the teacher's weights, not the student's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    student = MultiCropWrapper(net, torch.nn.Identity())
    teacher = make_teacher(student)
    student.train()
    teacher.train()
    with torch.no_grad():
        student(torch.randn(8, 1, 6, 6) * 5.0 + 3.0)  # the student sees other crops
        teacher(torch.randn(8, 1, 6, 6))
    bn_t, bn_s = teacher.backbone[1], student.backbone[1]
    own_mean = bn_t.running_mean.clone()
    own_var = bn_t.running_var.clone()
    assert not torch.allclose(own_mean, bn_s.running_mean)
    ema_update(teacher, student, 0.9)
    torch.testing.assert_close(bn_t.running_mean, own_mean)
    torch.testing.assert_close(bn_t.running_var, own_var)
    assert int(bn_t.num_batches_tracked) == 1
