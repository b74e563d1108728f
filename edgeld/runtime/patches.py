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
    if spec.factor == 1:
        return crop_patches(reduce_image(image, 1), centres, spec, mean, std), centres
    patches = np.concatenate([_window_patch(image, c, spec, mean, std) for c in centres])
    return patches, centres


# reduced pixels a window keeps beyond the patch on each side: bilinear sampling reads one
# neighbour, so two keep every sample away from the window's cut edges
WINDOW_MARGIN = 2


def _window_patch(image: np.ndarray, centre: np.ndarray, spec: PatchSpec, mean: float,
                  std: float) -> np.ndarray:
    """One patch cut from a window of the source reduced on its own: box reduction is local, so a
    window cut on the factor's grid reduces to exactly those pixels of the whole reduced image
    (tests/test_transforms.py checks equality), at a few percent of reducing the whole film."""
    f = spec.factor
    reduced_hw = (-(-image.shape[0] // f), -(-image.shape[1] // f))  # Pillow rounds up
    origin = spec.patch_origin(centre[None])[0]
    lo = np.floor(origin).astype(int) - WINDOW_MARGIN
    hi = lo + spec.size + 2 * WINDOW_MARGIN + 1
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], reduced_hw[1]), min(hi[1], reduced_hw[0])
    if x1 <= x0 or y1 <= y0:  # the patch lies wholly off the film: all fill, as before
        return normalize(np.zeros((1, 1, spec.size, spec.size), np.float32), mean, std)
    window = reduce_image(np.ascontiguousarray(image[y0 * f:y1 * f, x0 * f:x1 * f]), f)
    return crop_patches(window, (origin - (x0, y0) + (spec.size - 1) / 2.0)[None], spec, mean, std)
