"""torch Dataset of jittered patches, one per image x landmark, for a cascade's refinement stage."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeld.core.codec import SoftmaxHeatmapCodec
from edgeld.data.augment import random_intensity
from edgeld.runtime.patches import PatchSpec, crop_patches


class PatchDataset(Dataset):
    """(patch (1, S, S), target heatmap (1, h, w), landmark index) for every image x landmark.

    Each patch is centred on the ground truth moved by a random offset (Gaussian `jitter_sigma_px`,
    clipped at `jitter_max_px`, in reduced pixels) that mimics a first stage's errors."""

    def __init__(self, reduced: list[np.ndarray], points_reduced: list[np.ndarray], spec: PatchSpec,
                 codec: SoftmaxHeatmapCodec, mean: float, std: float, seed: int,
                 jitter_sigma_px: float, jitter_max_px: float):
        self.reduced, self.points, self.spec, self.codec = reduced, points_reduced, spec, codec
        self.mean, self.std = mean, std
        self.jitter_sigma_px, self.jitter_max_px = jitter_sigma_px, jitter_max_px
        self.k = len(points_reduced[0])
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.reduced) * self.k

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        i, k = divmod(index, self.k)
        truth = self.points[i][k]
        offset = np.clip(self.rng.normal(0, self.jitter_sigma_px, 2),
                         -self.jitter_max_px, self.jitter_max_px)
        centre = truth + offset
        patch = crop_patches(self.reduced[i], centre[None], self.spec, 0.0, 1.0)[0, 0]
        patch = (random_intensity(self.rng, patch) - self.mean) / self.std
        in_patch = truth - self.spec.patch_origin(centre)
        target = self.codec.encode(in_patch[None])
        return torch.from_numpy(patch[None].astype(np.float32)), torch.from_numpy(target), k
