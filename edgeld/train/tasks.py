"""Training objectives as tasks: each returns a dict of named, unweighted losses.

A whole-image batch is (inputs (N,1,H,W), heatmap targets (N,K,h,w), landmark cells (N,K,2));
a refiner's is (patches (N,1,S,S), targets (N,1,h,w), landmark index (N,)).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from edgeld.models.aux_heads import AuxiliaryHeads
from edgeld.models.landmarknet import LandmarkNet
from edgeld.torchside.losses import heatmap_loss, offset_loss, own_channel_heatmap_loss


def random_block_mask(x: torch.Tensor, block: int, ratio: float, prob: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """A (N,1,H,W) 0/1 mask: for each image with probability `prob`, `ratio` of blocks set to 1."""
    n, _, h, w = x.shape
    gh, gw = -(-h // block), -(-w // block)
    blocks = torch.rand(n, 1, gh, gw, generator=generator) < ratio
    chosen = torch.rand(n, 1, 1, 1, generator=generator) < prob
    # drawn on the CPU generator whatever the device, so a run's mask stream does not depend on it
    mask = (blocks & chosen).to(device=x.device, dtype=x.dtype)
    return F.interpolate(mask, scale_factor=block, mode="nearest")[..., :h, :w]


class HeatmapTask(nn.Module):
    """Plain supervised heatmap regression (the student without distillation)."""

    loss_weights = {"heatmap": 1.0}

    def __init__(self, net: LandmarkNet):
        super().__init__()
        self.net = net

    def forward(self, x, targets, cells) -> dict[str, torch.Tensor]:
        return {"heatmap": heatmap_loss(self.net(x), targets)}


class MultiTaskTask(nn.Module):
    """Heatmaps plus offset regression and masked-image reconstruction on shared decoder features."""

    def __init__(self, net: LandmarkNet, offset_weight: float, reconstruction_weight: float,
                 mask_block: int = 16, mask_ratio: float = 0.3, mask_prob: float = 0.5):
        super().__init__()
        self.net = net
        self.heads = AuxiliaryHeads(net.spec.decoder_width, net.spec.num_landmarks)
        self.loss_weights = {"heatmap": 1.0, "offset": offset_weight,
                             "reconstruction": reconstruction_weight}
        self.mask_block, self.mask_ratio, self.mask_prob = mask_block, mask_ratio, mask_prob

    def forward(self, x, targets, cells) -> dict[str, torch.Tensor]:
        # heatmaps and offsets are learnt on the clean input, so that comparing with and without
        # the auxiliary tasks measures the tasks, not input corruption; only reconstruction sees
        # the masked input (a second pass through the shared network)
        feats = self.net.forward_features(x)
        losses = {"heatmap": heatmap_loss(self.net.forward_head(feats), targets)}
        if self.loss_weights["offset"] > 0:
            losses["offset"] = offset_loss(self.heads(feats)["offsets"], cells)
        if self.loss_weights["reconstruction"] > 0:
            mask = random_block_mask(x, self.mask_block, self.mask_ratio, self.mask_prob)
            masked = self.net.forward_features(x * (1 - mask))  # 0 is mid-gray after normalization
            stride = x.shape[-1] // masked.shape[-1]
            clean = F.avg_pool2d(x, stride)
            cell_mask = F.avg_pool2d(mask, stride)
            err = (self.heads(masked)["reconstruction"] - clean).abs() * cell_mask
            losses["reconstruction"] = err.sum() / cell_mask.sum().clamp_min(1.0)
        return losses


class RefinerTask(nn.Module):
    """A cascade's refinement stage: each patch trains only its own landmark's channel."""

    loss_weights = {"heatmap": 1.0}

    def __init__(self, net: LandmarkNet):
        super().__init__()
        self.net = net

    def forward(self, x, targets, k) -> dict[str, torch.Tensor]:
        return {"heatmap": own_channel_heatmap_loss(self.net(x), targets, k)}
