"""Letterbox preprocessing and its exact inverse, in numpy + Pillow.

This is the one implementation used by training, evaluation, export parity checks and the runtime.
Coordinates are (x, y) in pixels with pixel centres at integers, the convention Pillow's resize uses:
a point maps as dst = (src + 0.5) * scale - 0.5 + pad.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgeld.core.parallel_resize import resize_uint8


# Pillow's reducing_gap: box-reduce by an integer factor floor(scale / gap) first, then an
# antialiased bilinear resize over the last factor < 2 * gap. 3.0 (Pillow documents the result as
# indistinguishable from a full antialiased resize) is what models made before 2026-12-02 saw;
# 1.5 (ISBI: reduce(4), then 1.56x) is about twice as fast and moved the shipped cascade's test1
# MRE by 0.002 mm. Each model's contract names its own (InputSpec.reducing_gap).
REDUCING_GAP = 3.0


@dataclass(frozen=True)
class Letterbox:
    """Aspect-preserving resize of a (src_h, src_w) image into (dst_h, dst_w), padded with zeros."""

    src_h: int
    src_w: int
    dst_h: int
    dst_w: int
    resized_h: int
    resized_w: int
    pad_top: int
    pad_left: int

    @classmethod
    def fit(cls, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> "Letterbox":
        """The letterbox that fits an image of size src_hw into dst_hw, centred."""
        src_h, src_w = int(src_hw[0]), int(src_hw[1])
        dst_h, dst_w = int(dst_hw[0]), int(dst_hw[1])
        if min(src_h, src_w, dst_h, dst_w) <= 0:
            raise ValueError(f"empty image size: {src_hw} -> {dst_hw}")
        scale = min(dst_h / src_h, dst_w / src_w)
        resized_h = min(dst_h, max(1, round(src_h * scale)))
        resized_w = min(dst_w, max(1, round(src_w * scale)))
        return cls(src_h, src_w, dst_h, dst_w, resized_h, resized_w,
                   (dst_h - resized_h) // 2, (dst_w - resized_w) // 2)

    @property
    def scale_xy(self) -> np.ndarray:
        """Per-axis scale (x, y); they differ from each other only by rounding of the resized size."""
        return np.array([self.resized_w / self.src_w, self.resized_h / self.src_h])

    @property
    def pad_xy(self) -> np.ndarray:
        return np.array([self.pad_left, self.pad_top], dtype=np.float64)

    def forward_points(self, points: np.ndarray) -> np.ndarray:
        """Source-image (x, y) points to model-input coordinates."""
        return (np.asarray(points, dtype=np.float64) + 0.5) * self.scale_xy - 0.5 + self.pad_xy

    def inverse_points(self, points: np.ndarray) -> np.ndarray:
        """Model-input (x, y) points back to source-image pixels."""
        return (np.asarray(points, dtype=np.float64) + 0.5 - self.pad_xy) / self.scale_xy - 0.5

    def apply(self, image: np.ndarray, reducing_gap: float = REDUCING_GAP) -> np.ndarray:
        """Resize (integer box reduction by floor(scale / reducing_gap), then antialiased
        bilinear) and pad a 2D image; returns float32 in [0, 1]."""
        if image.shape != (self.src_h, self.src_w):
            raise ValueError(f"image is {image.shape}, letterbox expects {(self.src_h, self.src_w)}")
        size = (self.resized_w, self.resized_h)
        if image.dtype == np.uint8:  # resizing 8-bit data is several times faster; two cores
            # share it where that is bit for bit the one-core result (core/parallel_resize.py)
            resized = (resize_uint8(image, size, reducing_gap).astype(np.float32)
                       * np.float32(1.0 / 255.0))
        elif image.dtype == np.uint16:
            resized = _resize_uint16(image, size, reducing_gap)
        else:
            pil = Image.fromarray(to_unit_float(image), mode="F")
            resized = np.asarray(pil.resize(size, Image.BILINEAR, reducing_gap=reducing_gap),
                                 dtype=np.float32)
        out = np.zeros((self.dst_h, self.dst_w), dtype=np.float32)
        out[self.pad_top:self.pad_top + self.resized_h,
            self.pad_left:self.pad_left + self.resized_w] = resized
        return out


def _resize_uint16(image: np.ndarray, size: tuple[int, int], reducing_gap: float) -> np.ndarray:
    """Pillow's resize with `reducing_gap` of a 16-bit image, as float32 in [0, 1], without a
    full-size float copy: Pillow cannot reduce 16-bit images, so the integer box reduction runs
    here in integer sums (what Pillow's reduce computes, to float32 rounding), and only the
    reduced image becomes float for the last antialiased step, over the same box Pillow uses."""
    h, w = image.shape
    fx = int(w / size[0] / reducing_gap) or 1
    fy = int(h / size[1] / reducing_gap) or 1
    reduced = box_mean(image, fx, fy) * np.float32(1.0 / 65535.0)
    pil = Image.fromarray(reduced, mode="F")
    return np.asarray(pil.resize(size, Image.BILINEAR, box=(0, 0, w / fx, h / fy)), dtype=np.float32)


def box_mean(image: np.ndarray, fx: int, fy: int) -> np.ndarray:
    """Means of (fy, fx) pixel blocks of an integer image (up to 16 bits) as float32; the last
    block row and column average the pixels they have, as `PIL.Image.reduce` does."""
    sums = _block_sums(_block_sums(image, fy).T, fx).T
    h, w = image.shape
    rows = np.full(sums.shape[0], fy, dtype=np.float32)
    rows[-1] = h - fy * (sums.shape[0] - 1)
    cols = np.full(sums.shape[1], fx, dtype=np.float32)
    cols[-1] = w - fx * (sums.shape[1] - 1)
    return sums.astype(np.float32) / (rows[:, None] * cols[None, :])


def _block_sums(a: np.ndarray, f: int) -> np.ndarray:
    """Sums of consecutive f-row blocks (uint32), the last block short when rows % f != 0:
    f strided row slices added into one accumulator, each pass contiguous along rows."""
    if f == 1:
        return a.astype(np.uint32)
    n = a.shape[0] // f
    sums = a[0:n * f:f].astype(np.uint32)
    for k in range(1, f):
        sums += a[k:n * f:f]
    if a.shape[0] > n * f:
        sums = np.concatenate([sums, a[n * f:].sum(axis=0, dtype=np.uint32)[None]])
    return sums


def to_unit_float(image: np.ndarray) -> np.ndarray:
    """Grayscale intensities as float32 in [0, 1], by the array's type."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def normalize(unit_image: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Fixed intensity normalization of a [0, 1] image."""
    return ((unit_image - mean) / std).astype(np.float32)


def preprocess(image: np.ndarray, height: int, width: int, mean: float, std: float,
               reducing_gap: float = REDUCING_GAP) -> tuple[np.ndarray, Letterbox]:
    """A 2D grayscale image to a normalized (1, height, width) float32 tensor and its letterbox."""
    if image.ndim != 2:
        raise ValueError(f"expected a 2D grayscale image, got shape {image.shape}")
    box = Letterbox.fit(image.shape, (height, width))
    return normalize(box.apply(image, reducing_gap), mean, std)[None], box
