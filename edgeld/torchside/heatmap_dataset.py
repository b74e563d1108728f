"""torch Dataset over letterboxed images held in memory, with augmentation and heatmap targets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from edgeld.config import TrainSpec
from edgeld.core.codec import SoftmaxHeatmapCodec
from edgeld.core.letterbox import REDUCING_GAP, Letterbox, normalize
from edgeld.data.augment import (elastic_warp_image, elastic_warp_points, random_affine, random_elastic,
                                 random_intensity, warp_image, warp_points)
from edgeld.data.datasets import Sample
from edgeld.data.images import load_grayscale


@dataclass
class CachedSample:
    """A sample letterboxed once: unit-float model input, landmarks in input pixels, its letterbox."""

    sample: Sample
    image: np.ndarray
    points: np.ndarray
    box: Letterbox


def cache_samples(samples: Sequence[Sample], height: int, width: int, reference: str,
                  progress: bool = True, reducing_gap: float = REDUCING_GAP) -> list[CachedSample]:
    """Decode and letterbox every image once (the slow part of loading), for training and validation."""
    cached = []
    for s in tqdm(samples, desc="loading images", disable=not progress, leave=False):
        img = load_grayscale(s.path)
        box = Letterbox.fit(img.shape, (height, width))
        cached.append(CachedSample(s, box.apply(img, reducing_gap),
                                   box.forward_points(s.reference(reference)), box))
    return cached


class HeatmapDataset(Dataset):
    """Yields (normalized input (1, H, W), target heatmaps (K, h, w), landmark cells (K, 2)),
    augmented when a TrainSpec is given."""

    def __init__(self, cached: list[CachedSample], codec: SoftmaxHeatmapCodec, mean: float,
                 std: float, spec: TrainSpec | None = None, seed: int = 0):
        self.cached = cached
        self.codec = codec
        self.mean, self.std = mean, std
        self.spec = spec
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.cached)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        item = self.cached[index]
        image, points = item.image, item.points
        if self.spec is not None:
            h, w = image.shape
            matrix = random_affine(self.rng, h, w, self.spec.rotate_deg, self.spec.scale_range,
                                   self.spec.shift_fraction)
            image, points = warp_image(image, matrix), warp_points(points, matrix)
            if self.spec.elastic_px > 0:  # no draw when off: the default recipe's draws are unchanged
                control = random_elastic(self.rng, self.spec.elastic_px)
                image = elastic_warp_image(image, control)
                points = elastic_warp_points(points, control, h, w)
            image = random_intensity(self.rng, image, self.spec.intensity_strength)
        x = normalize(image, self.mean, self.std)[None]
        cells = self.codec.to_cells(points).astype(np.float32)
        return torch.from_numpy(x), torch.from_numpy(self.codec.encode(points)), torch.from_numpy(cells)
