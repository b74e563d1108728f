"""Losses shared by plain training, multi-task pretraining, distillation and the refiner."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def heatmap_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """KL divergence between Gaussian targets and each map's spatial softmax, mean over maps."""
    log_p = F.log_softmax(logits.flatten(2), dim=2)
    t = targets.flatten(2)
    return (t * (torch.log(t.clamp_min(1e-12)) - log_p)).sum(dim=2).mean()


def offset_loss(pred: torch.Tensor, cells: torch.Tensor, radius: float = 2.0) -> torch.Tensor:
    """L1 between predicted (N,K,2,h,w) and true sub-cell vectors, on cells within `radius`."""
    n, k, _, h, w = pred.shape
    ys = torch.arange(h, dtype=pred.dtype, device=pred.device).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=pred.dtype, device=pred.device).view(1, 1, 1, w)
    dx = cells[..., 0, None, None] - xs
    dy = cells[..., 1, None, None] - ys
    target = torch.stack([dx.expand(n, k, h, w), dy.expand(n, k, h, w)], dim=2)
    mask = ((dx ** 2 + dy ** 2) <= radius ** 2).unsqueeze(2).to(pred.dtype)
    return ((pred - target).abs() * mask).sum() / mask.sum().clamp_min(1.0) / 2.0


def own_channel_heatmap_loss(logits: torch.Tensor, targets: torch.Tensor,
                             k: torch.Tensor) -> torch.Tensor:
    """Heatmap loss on each sample's own landmark channel `k` (a refiner's patches: one landmark
    each, though the network has a channel for every landmark)."""
    own = logits[torch.arange(len(k), device=k.device), k][:, None]
    return heatmap_loss(own, targets)
