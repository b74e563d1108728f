"""Patches around landmarks for the cascade's refinement stage. numpy + Pillow, no torch.

The source image is box-reduced by an integer `factor` (ISBI: 2, i.e. 0.2 mm per pixel), then a
`size` x `size` patch is sampled (bilinear, subpixel) centred on each first-stage landmark.
Coordinates use pixel centres: a reduced pixel u covers source pixels factor*u .. factor*u+factor-1,
so its centre is at source factor*u + (factor - 1) / 2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgeld.core.letterbox import normalize, to_unit_float


@dataclass(frozen=True)
class PatchSpec:
    size: int = 64
    factor: int = 2

    def source_to_reduced(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - (self.factor - 1) / 2.0) / self.factor

    def reduced_to_source(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) * self.factor + (self.factor - 1) / 2.0

    def patch_origin(self, centres_reduced: np.ndarray) -> np.ndarray:
        """Reduced-image coordinates of each patch's pixel (0, 0)."""
        return np.asarray(centres_reduced, dtype=np.float64) - (self.size - 1) / 2.0


def reduce_image(image: np.ndarray, factor: int) -> Image.Image:
    """The source as a Pillow image reduced by an integer factor (box filter).

    8-bit images stay 8-bit ("L"): converting a full-size X-ray to float first costs more than
    the whole refinement; other depths become float in [0, 1] ("F")."""
    if image.dtype == np.uint8:
        pil = Image.fromarray(image, mode="L")
    else:
        pil = Image.fromarray(to_unit_float(image), mode="F")
    return pil.reduce(factor) if factor > 1 else pil


def crop_patches(reduced: Image.Image, centres_reduced: np.ndarray, spec: PatchSpec, mean: float,
                 std: float) -> np.ndarray:
    """Normalized (K, 1, size, size) float32 patches centred on each (x, y) point (zero outside)."""
    origins = spec.patch_origin(centres_reduced)
    scale = 1.0 / 255.0 if reduced.mode == "L" else 1.0
    patches = np.empty((len(origins), 1, spec.size, spec.size), dtype=np.float32)
    for i, (ox, oy) in enumerate(origins):
        # Pillow's affine maps output corner coordinates to input corner coordinates; with pixel
        # centres on both sides the shift is the same
        patch = reduced.transform((spec.size, spec.size), Image.AFFINE,
                                  data=(1.0, 0.0, float(ox), 0.0, 1.0, float(oy)),
                                  resample=Image.BILINEAR, fillcolor=0)
        patches[i, 0] = np.asarray(patch, dtype=np.float32) * scale
    return normalize(patches, mean, std)


def patches_around(image: np.ndarray, points_src: np.ndarray, spec: PatchSpec, mean: float,
                   std: float) -> tuple[np.ndarray, np.ndarray]:
    """A refiner's input for one image, exactly as the cascade makes it: normalized (K, 1, size,
    size) patches around the source-pixel points (x, y), and the centres in reduced pixels.
    The runtime's refinement and the refiners' calibration sets both cut their patches here."""
    centres = spec.source_to_reduced(points_src)
    return crop_patches(reduce_image(image, spec.factor), centres, spec, mean, std), centres
