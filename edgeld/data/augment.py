"""Training-time augmentation on letterboxed inputs: random affine plus intensity changes. numpy+Pillow.

Geometry uses the pixel-centre convention of `edgeld.core.letterbox`; Pillow's affine transform
works in pixel-corner coordinates, hence the half-pixel shifts below.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image


def random_affine(rng: np.random.Generator, height: int, width: int, rotate_deg: float,
                  scale_range: float, shift_fraction: float) -> np.ndarray:
    """A 3x3 matrix mapping pixel-corner coordinates of the input to those of the augmented image."""
    angle = math.radians(rng.uniform(-rotate_deg, rotate_deg))
    scale = math.exp(rng.uniform(-scale_range, scale_range))
    tx, ty = rng.uniform(-shift_fraction, shift_fraction, size=2) * (width, height)
    cx, cy = width / 2.0, height / 2.0
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    return np.array([[cos, -sin, cx + tx - cos * cx + sin * cy],
                     [sin, cos, cy + ty - sin * cx - cos * cy],
                     [0.0, 0.0, 1.0]])


def warp_image(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a corner-coordinate affine matrix to a float32 2D image (bilinear, zero fill)."""
    inv = np.linalg.inv(matrix)
    h, w = image.shape
    out = Image.fromarray(image.astype(np.float32), mode="F").transform(
        (w, h), Image.AFFINE, data=tuple(inv[:2].ravel()), resample=Image.BILINEAR, fillcolor=0.0)
    return np.asarray(out, dtype=np.float32)


def warp_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply the same matrix to (K, 2) pixel-centre points."""
    corner = np.asarray(points, dtype=np.float64) + 0.5
    moved = corner @ matrix[:2, :2].T + matrix[:2, 2]
    return moved - 0.5


def random_intensity(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Exposure variation on a [0, 1] image: gamma, contrast, brightness and mild noise."""
    # float32 throughout (same random draws as before): this runs per image per training step
    gamma = np.float32(math.exp(rng.uniform(-0.35, 0.35)))
    out = np.power(np.clip(image, 0.0, 1.0, dtype=np.float32), gamma)
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-0.08, 0.08)
    out = (out - 0.5) * np.float32(contrast) + np.float32(0.5 + brightness)
    out += rng.normal(0.0, rng.uniform(0.0, 0.02), size=image.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)
