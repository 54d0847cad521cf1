"""Multi-GPU runs normalise with the global batch's statistics (official ``main_dino.py``
converts BatchNorm to SyncBatchNorm); single-device and CPU runs keep plain BatchNorm."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from dino_core.config import build_config
from dino_core.models import build_model
from dino_core.models.sync_bn import has_batchnorms, sync_batchnorms
from dino_core.runtime import Runtime
from dino_core.teacher import make_teacher


def runtime(device: str, world_size: int) -> Runtime:
    return Runtime(device=torch.device(device), rank=0, world_size=world_size, local_rank=0)


def resnet() -> nn.Module:
    head = {"out_dim": 16, "hidden_dim": 32, "bottleneck_dim": 16}
    cfg = build_config({"model": {"arch": "resnet10t", "drop_path_rate": 0.0}, "head": head})
    return build_model(cfg)


def kinds(model: nn.Module) -> set[str]:
    return {type(m).__name__ for m in model.modules() if "BatchNorm" in type(m).__name__}


def test_every_batchnorm_of_student_and_teacher_syncs_on_several_gpus() -> None:
    student = resnet()
    teacher = make_teacher(student, resnet())
    rt = runtime("cuda", 2)
    s, t = sync_batchnorms(student, rt), sync_batchnorms(teacher, rt)
    assert kinds(s) == kinds(t) == {"SyncBatchNorm"}
    # the conversion keeps the weights and the teacher's frozen parameters
    assert not any(p.requires_grad for p in t.parameters())
    for (name, a), (_, b) in zip(student.state_dict().items(), s.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize(("device", "world_size"), [("cuda", 1), ("cpu", 2), ("cpu", 1)])
def test_one_gpu_and_cpu_groups_keep_plain_batchnorm(device: str, world_size: int) -> None:
    model = resnet()
    assert sync_batchnorms(model, runtime(device, world_size)) is model
    assert kinds(model) == {"BatchNorm2d"}


def test_a_model_without_batchnorm_is_left_alone() -> None:
    vit = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    assert not has_batchnorms(vit)
    assert sync_batchnorms(vit, runtime("cuda", 2)) is vit
