"""Fixed 2-D sin-cos position embeddings for ViTs (``model.pos_embed: sincos``).

DINO v1 learns its position embeddings (timm's ``pos_embed``, the default ``learn``). MoCo v3
(Chen, Xie and He 2021, "An Empirical Study of Training Self-Supervised Vision Transformers",
arXiv 2104.02057) trains its self-supervised ViTs with fixed 2-D sin-cos position
embeddings instead; MAE (He et al. 2022) does the same. A quarter of the width per part, for the
patch in row ``y`` and column ``x`` of the grid: ``sin(x w_k)``, ``cos(x w_k)``, ``sin(y w_k)``,
``cos(y w_k)`` with ``w_k = 1 / 10000^(k / (D/4))``, ``k = 0 .. D/4 - 1`` (MoCo v3's
temperature 10000). Prefix tokens (CLS, registers) get zeros, as MoCo v3's class token does.
The table is frozen (``requires_grad=False``): the optimiser skips it, and the teacher's EMA,
which averages every parameter, leaves the identical copy in the teacher unchanged. For crops
of another size timm resamples it as it resamples a learned table (bicubic,
``dynamic_img_size``), as the official code does for 96 px local crops.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

SINCOS_TEMPERATURE = 10000.0  # MoCo v3 (and the Transformer's sinusoids)


def sincos_table(height: int, width: int, dim: int) -> torch.Tensor:
    """``[height * width, dim]`` embeddings of a row-major patch grid (module doc)."""
    if dim % 4 != 0:
        raise ValueError(f"sin-cos position embeddings need a width divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / SINCOS_TEMPERATURE ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    ox = x.reshape(-1, 1) * omega
    oy = y.reshape(-1, 1) * omega
    return torch.cat([ox.sin(), ox.cos(), oy.sin(), oy.cos()], dim=1).float()


def use_sincos_pos_embed(model: nn.Module) -> None:
    """Overwrite a timm ViT's learned position table with the frozen sin-cos one."""
    vit: Any = model
    table: nn.Parameter = vit.pos_embed
    grid_h, grid_w = vit.patch_embed.grid_size
    prefix = table.shape[1] - grid_h * grid_w
    with torch.no_grad():
        table.zero_()
        table[0, prefix:] = sincos_table(grid_h, grid_w, table.shape[-1]).to(table.dtype)
    table.requires_grad_(False)
