"""Auxiliary heads for the teacher's multi-task pretraining (FSF-LD pretrains its teacher this way).

Both read the decoder's stride-4 features, so the features the student later learns from are shaped
by three tasks at once:
- offset regression: per cell near a landmark, the sub-cell vector to it (localization finer than
  the grid);
- masked-image reconstruction: the clean image at stride 4 under random block masking (a
  self-supervised task on the X-rays themselves, standing in for ImageNet weights we cannot fetch).
"""
from __future__ import annotations

import torch
from torch import nn


class AuxiliaryHeads(nn.Module):
    def __init__(self, channels: int, num_landmarks: int):
        super().__init__()
        self.offset = nn.Conv2d(channels, 2 * num_landmarks, 1)
        self.reconstruction = nn.Sequential(
            nn.Conv2d(channels, channels // 2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, 1, 1))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        n, _, h, w = features.shape
        return {"offsets": self.offset(features).view(n, -1, 2, h, w),
                "reconstruction": self.reconstruction(features)}
