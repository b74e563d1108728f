"""torch Dataset of jittered patches, one per image x landmark, for a cascade's refinement stage."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeld.core.codec import SoftmaxHeatmapCodec
from edgeld.data.augment import random_affine, random_intensity, warp_image, warp_points
from edgeld.runtime.patches import PatchSpec, crop_patches


class PatchDataset(Dataset):
    """(patch (1, S, S), target heatmap (1, h, w), landmark index) for every image x landmark.

    Each patch is centred on the ground truth moved by a random offset (Gaussian `jitter_sigma_px`,
    clipped at `jitter_max_px`, in reduced pixels) that mimics a first stage's errors; with
    `rotate_deg` or `scale_range`, it is also rotated by up to ±rotate_deg and scaled by
    exp(±scale_range) about its centre, the target moved by the same map."""

    def __init__(self, reduced: list[np.ndarray], points_reduced: list[np.ndarray], spec: PatchSpec,
                 codec: SoftmaxHeatmapCodec, mean: float, std: float, seed: int,
                 jitter_sigma_px: float, jitter_max_px: float, rotate_deg: float = 0.0,
                 scale_range: float = 0.0):
        self.reduced, self.points, self.spec, self.codec = reduced, points_reduced, spec, codec
        self.mean, self.std = mean, std
        self.jitter_sigma_px, self.jitter_max_px = jitter_sigma_px, jitter_max_px
        self.rotate_deg, self.scale_range = rotate_deg, scale_range
        if (rotate_deg or scale_range) and (spec.size % 2 or scale_range > 0.3):
            raise ValueError("turned patches need an even patch size and a scale range <= 0.3 "
                             "(the wide patch they are cut from must cover every corner)")
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
        if self.rotate_deg or self.scale_range:  # no extra draws otherwise: old runs reproduce
            patch, in_patch = self._turned(self.reduced[i], centre, truth)
        else:
            patch = crop_patches(self.reduced[i], centre[None], self.spec, 0.0, 1.0)[0, 0]
            in_patch = truth - self.spec.patch_origin(centre)
        patch = (random_intensity(self.rng, patch) - self.mean) / self.std
        target = self.codec.encode(in_patch[None])
        return torch.from_numpy(patch[None].astype(np.float32)), torch.from_numpy(target), k

    def _turned(self, reduced: np.ndarray, centre: np.ndarray, truth: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """A patch rotated and scaled about `centre`, and the truth in its pixels: a patch twice
        the size is cut as the runtime cuts one, warped about its middle, and its middle kept
        (at ±15 degrees and 0.9x the corners still read inside the wide patch)."""
        n = self.spec.size
        wide_spec = PatchSpec(2 * n, self.spec.factor)
        wide = crop_patches(reduced, centre[None], wide_spec, 0.0, 1.0)[0, 0]
        matrix = random_affine(self.rng, 2 * n, 2 * n, self.rotate_deg, self.scale_range, 0.0)
        half = n // 2
        patch = warp_image(wide, matrix)[half:half + n, half:half + n]
        moved = warp_points((truth - wide_spec.patch_origin(centre))[None], matrix)[0]
        return patch, moved - half
