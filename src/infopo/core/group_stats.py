"""Per-group statistics on tensors: mean, unbiased std and z-score, broadcast back to the elements.

Groups are given by a long index tensor with arbitrary ids (unsorted, non-contiguous). Statistics are
accumulated in float64 and returned in the dtype of the values.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

EPS = 1e-6


class GroupStats(NamedTuple):
    """Statistics of each element's group, broadcast to the elements' shape."""

    mean: Tensor  # mean of the group's masked values
    std: Tensor  # unbiased std; 0 for a group with fewer than two masked values
    count: Tensor  # number of masked values in the group (long)


def group_stats(values: Tensor, group: Tensor, mask: Tensor | None = None) -> GroupStats:
    """Mean, unbiased std and count of each element's group.

    values: (*S) float. group: (*S) or a leading prefix of S, e.g. (B,) for (B, L) token values, long.
    mask: (*S) bool, the elements that take part (default all); unmasked elements still receive their
    group's statistics. A group whose masked values are all equal gets exactly its value as mean and
    std 0 (no rounding residue), so ties give exactly zero z-scores.
    """
    if group.shape != values.shape[: group.ndim]:
        raise ValueError(f"group shape {tuple(group.shape)} is not a prefix of {tuple(values.shape)}")
    group = group.reshape(*group.shape, *([1] * (values.ndim - group.ndim))).expand_as(values)
    if mask is None:
        mask = torch.ones_like(values, dtype=torch.bool)
    elif mask.shape != values.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from values {tuple(values.shape)}")

    x = values.reshape(-1).to(torch.float64)
    m = mask.reshape(-1)
    _, inv = torch.unique(group.reshape(-1), return_inverse=True)
    n_groups = int(inv.max()) + 1 if inv.numel() else 0
    zeros = x.new_zeros(n_groups)

    count = zeros.index_add(0, inv, m.to(torch.float64))
    mean = zeros.index_add(0, inv, torch.where(m, x, 0.0)) / count.clamp(min=1.0)
    inf = torch.tensor(torch.inf, dtype=torch.float64, device=x.device)
    vmax = torch.full_like(zeros, -torch.inf).scatter_reduce(0, inv, torch.where(m, x, -inf), "amax")
    vmin = torch.full_like(zeros, torch.inf).scatter_reduce(0, inv, torch.where(m, x, inf), "amin")
    mean = torch.where((count > 0) & (vmax == vmin), vmax, mean)

    dev = torch.where(m, x - mean[inv], 0.0)
    var = zeros.index_add(0, inv, dev * dev) / (count - 1.0).clamp(min=1.0)
    std = torch.where(count > 1, var.sqrt(), 0.0)

    def back(t: Tensor, dtype: torch.dtype) -> Tensor:
        return t[inv].reshape(values.shape).to(dtype)

    return GroupStats(back(mean, values.dtype), back(std, values.dtype), back(count, torch.long))


def group_zscore(
    values: Tensor, group: Tensor, mask: Tensor | None = None, *, eps: float = EPS, scale: bool = True
) -> Tensor:
    """(x - mean_g) / (std_g + eps) on masked elements, 0 elsewhere; shapes as in `group_stats`.

    A group with a single masked value gives 0. scale=False gives x - mean_g (Dr.GRPO, no std).
    """
    stats = group_stats(values, group, mask)
    centered = values - stats.mean
    z = centered / (stats.std + eps) if scale else centered
    keep = stats.count > 1 if mask is None else mask & (stats.count > 1)
    return torch.where(keep, z, torch.zeros_like(z))


def masked_std(values: Tensor, mask: Tensor) -> Tensor:
    """Unbiased std (scalar tensor) of values[mask]; 0 when fewer than two values are masked."""
    if values.numel() == 0:
        return values.new_zeros(())
    one_group = torch.zeros(values.numel(), dtype=torch.long, device=values.device)
    return group_stats(values.reshape(-1), one_group, mask.reshape(-1)).std[0]
