"""Self-attention of the last block's CLS token (paper Sec. 4.2, Figs. 1 and 3).

timm computes attention with fused scaled-dot-product kernels, so the weights never exist
as a tensor. We leave the model untouched: a forward pre-hook on the last block's ``attn``
module records its input (the ``norm1`` output), and the weights are recomputed from that
module's own projection as ``softmax(scale * q k^T)`` (after its ``q_norm``/``k_norm``), which is
exactly what the fused kernel evaluates. The model's outputs are bit-identical with and
without the hook.

A mask keeps the smallest set of patches whose share of the CLS→patch attention is at least
``threshold`` (paper: 60% of the mass), found by taking patches in decreasing order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

PAPER_MASS_THRESHOLD = 0.6  # paper Sec. 4.2 / Fig. 3: keep 60% of the attention mass
MASS_TOLERANCE = 1e-6  # masses this close to the threshold count as reaching it (float32 sums)


def no_attention_reason(arch: str) -> str:
    """What to tell a user who asks for attention maps of a ConvNet ``arch``."""
    return (
        f"model.arch={arch!r} is a ConvNet: it has no self-attention, so there are no "
        "attention maps or attention-mask scores (they exist for ViT backbones: vit_custom, "
        "vit_*); use k-NN or linear evaluation for this checkpoint"
    )


def _last_attention_module(model: nn.Module) -> Any:
    if not isinstance(model, VisionTransformer):
        raise ValueError(
            f"attention maps need a timm VisionTransformer backbone, got {type(model).__name__}"
            " (model.arch must be a ViT)"
        )
    attn: Any = model.blocks[-1].attn
    for name in ("qkv", "num_heads", "head_dim", "scale"):
        if not hasattr(attn, name):
            raise ValueError(
                f"the last block's attention ({type(attn).__name__}) has no {name!r}: only "
                "timm's standard Attention with a fused qkv projection is supported"
            )
    return attn


def attention_weights(attn: Any, x: torch.Tensor) -> torch.Tensor:
    """``softmax(scale * q k^T)`` ``[B, heads, N, N]`` of a timm ``Attention`` for input ``x``."""
    b, n, _ = x.shape
    heads, head_dim = int(attn.num_heads), int(attn.head_dim)
    qkv = attn.qkv(x).reshape(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, _ = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    scores = (q.float() * float(attn.scale)) @ k.float().transpose(-2, -1)
    return scores.softmax(dim=-1)


@contextmanager
def capture_last_attention_input(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the input of the last block's attention on every forward inside the block."""
    attn = _last_attention_module(model)
    seen: list[torch.Tensor] = []

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.append(args[0].detach())

    handle = attn.register_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@torch.no_grad()
def last_block_attention(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Attention weights ``[B, heads, N, N]`` of the last block (all tokens, float32)."""
    attn = _last_attention_module(model)
    vit: Any = model
    with capture_last_attention_input(model) as seen:
        vit.forward_features(images)
    return attention_weights(attn, seen[-1])


def patch_grid(model: nn.Module, height: int, width: int) -> tuple[int, int]:
    """Patch-grid size ``(h, w)`` the ViT uses for an image of ``height x width``."""
    pe: Any = model.patch_embed
    if hasattr(pe, "dynamic_feat_size"):
        h, w = pe.dynamic_feat_size((height, width))
        return int(h), int(w)
    ph, pw = patch_size_of(model)
    return height // ph, width // pw


def patch_size_of(model: nn.Module) -> tuple[int, int]:
    pe: Any = model.patch_embed
    ps = pe.patch_size
    return (int(ps[0]), int(ps[1])) if isinstance(ps, tuple | list) else (int(ps), int(ps))


@torch.no_grad()
def cls_attention_maps(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """CLS→patch attention per head ``[B, heads, h, w]`` (prefix/register tokens dropped).

    Values are the raw softmax weights, so a map sums to 1 minus the CLS→prefix share.
    """
    weights = last_block_attention(model, images)
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    h, w = patch_grid(model, images.shape[-2], images.shape[-1])
    cls_to_patch = weights[:, :, 0, prefix:]
    if cls_to_patch.shape[-1] != h * w:
        raise ValueError(
            f"expected {h}x{w} patch tokens after {prefix} prefix tokens, found "
            f"{cls_to_patch.shape[-1]}"
        )
    return cls_to_patch.reshape(images.shape[0], -1, h, w)


def mass_mask(maps: torch.Tensor, threshold: float = PAPER_MASS_THRESHOLD) -> torch.Tensor:
    """Boolean mask ``[..., h, w]`` of the fewest patches holding ``>= threshold`` of the mass.

    Each map is first normalised to sum to 1; patches are kept in decreasing order of weight
    until the kept mass reaches ``threshold`` (the last patch that crosses it is kept);
    masses within ``MASS_TOLERANCE`` of the threshold count as reaching it.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold={threshold} must be in (0, 1] (paper: 0.6)")
    flat = maps.flatten(-2).double()
    total = flat.sum(-1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError("an attention map has zero total mass: cannot threshold it")
    flat = flat / total
    vals, order = flat.sort(dim=-1, descending=True)
    mass_before = vals.cumsum(dim=-1) - vals
    keep_sorted = mass_before < threshold - MASS_TOLERANCE
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return keep.reshape(maps.shape)


def upsample_patches(
    patches: torch.Tensor, patch_size: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Per-patch values ``[..., h, w]`` to pixels ``[..., H, W]`` by nearest repetition (as
    the paper's figures): each patch covers its ``ph x pw`` pixels; pixels beyond the last
    full patch (the ViT drops them) get 0 / False."""
    ph, pw = patch_size
    up = patches.repeat_interleave(ph, dim=-2).repeat_interleave(pw, dim=-1)
    up = up[..., : size[0], : size[1]]
    out = torch.zeros((*patches.shape[:-2], size[0], size[1]), dtype=up.dtype, device=up.device)
    out[..., : up.shape[-2], : up.shape[-1]] = up
    return out
