"""3×3 convolutions that meet a 1×1 feature map computed with their centre tap alone.

On 28 px images a ResNet with the preset's stride-4 stem reaches 1×1 maps in its last stage
(7 → 4 → 2 → 1), and 14 px local crops a stage earlier. A 3×3 convolution with padding 1,
stride 1 and dilation 1 on a 1×1 input multiplies eight of its nine taps by the zero padding:
its output is, exactly, the 1×1 convolution with the kernel's centre, and the true gradient of
the other eight taps is zero. oneDNN computes all nine, and its weight-gradient kernel for this
shape is slow besides: on the 2-core AMD EPYC (Zen 3, AVX2) the preset's ResNet-10-T took
160 ms forward + backward for 64 images of 28 px and 306 ms for 256 of 14 px; with the centre
tap 115 and 174 ms, 1.39x and 1.76x (``python -m benchmarks.convnet_center_tap``). Parameters,
their names and shapes, and so checkpoints are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class CenterTapConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (3×3, padding 1, stride 1) that uses only ``weight[:, :, 1, 1]`` when
    its input is 1×1; any other input goes through the full convolution."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.shape[-2:] == (1, 1):
            centre = self.weight[:, :, 1:2, 1:2]
            return F.conv2d(input, centre, self.bias, 1, 0, 1, self.groups)
        return super().forward(input)


def _eligible(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.kernel_size == (3, 3)
        and m.padding == (1, 1)
        and m.stride == (1, 1)
        and m.dilation == (1, 1)
        and m.padding_mode == "zeros"
    )


def use_center_taps(model: nn.Module) -> int:
    """Make every eligible 3×3 convolution of ``model`` a :class:`CenterTapConv2d`, in place
    (same parameter objects); returns how many."""
    n = 0
    for m in model.modules():
        if _eligible(m):
            m.__class__ = CenterTapConv2d
            n += 1
    return n


def use_full_convolutions(model: nn.Module) -> int:
    """The inverse of :func:`use_center_taps`: every :class:`CenterTapConv2d` of ``model``
    computes its full convolution again (the reference in tests and benchmarks)."""
    n = 0
    for m in model.modules():
        if isinstance(m, CenterTapConv2d):
            m.__class__ = nn.Conv2d  # type: ignore[assignment]  # same parameters, full maths
            n += 1
    return n
