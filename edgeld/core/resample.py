"""Pillow's antialiased bilinear resize of a small float image, as two matrix products.

Pillow resamples a float ("F") image separably, each output pixel of a pass a weighted sum of a
run of input pixels, after an optional integer box reduction (`reducing_gap`). All of it is linear
and the weights depend only on the sizes, so for one pair of sizes the whole resize is
`rows @ image @ columns_t` with two small matrices, cached per size. The orientation check makes
one such thumbnail per film: through Pillow (float array to image, reduction, resize, back) it
cost 0.2-0.3 ms of a 6 ms detection on the 2-core VM, as matrices under 0.1 ms. The results equal
Pillow's to float32 rounding (tests/test_resample.py); the weights follow Pillow 13's
`precompute_coeffs` (libImaging/Resample.c) and `Image.resize` / `Image.reduce`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def bilinear_weights(in_size: int, in1: float, out_size: int) -> np.ndarray:
    """(out_size, in_size) float64 weights with which Pillow's bilinear filter maps the input span
    [0, in1) (in input pixels; in1 <= in_size) onto out_size pixels, antialiased when shrinking."""
    scale = float(np.float32(in1)) / out_size  # Pillow passes the box as C floats
    filterscale = max(scale, 1.0)
    support = filterscale  # the bilinear filter's support is 1 input pixel, widened when shrinking
    weights = np.zeros((out_size, in_size))
    for out in range(out_size):
        centre = (out + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)  # C's (int) truncates toward zero, as int() does
        hi = min(int(centre + support + 0.5), in_size)
        taps = np.maximum(1.0 - np.abs((np.arange(lo, hi) - centre + 0.5) * (1.0 / filterscale)), 0.0)
        total = taps.sum()
        weights[out, lo:hi] = taps / total if total != 0.0 else taps
    weights.setflags(write=False)
    return weights


def _box_reduce_weights(in_size: int, factor: int) -> np.ndarray:
    """(ceil(in_size / factor), in_size) weights of Pillow's `reduce` along one axis: the mean
    of each block of `factor` pixels, the last block averaging the pixels it has."""
    rows = -(-in_size // factor)
    block = np.arange(in_size) // factor
    counts = np.bincount(block, minlength=rows).astype(np.float64)
    weights = np.zeros((rows, in_size))
    weights[block, np.arange(in_size)] = 1.0 / counts[block]
    return weights


@lru_cache(maxsize=64)
def resize_weights(in_hw: tuple[int, int], out_hw: tuple[int, int], reducing_gap: float | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(rows (out_h, in_h), columns_t (in_w, out_w)) float32 matrices with which
    `rows @ image @ columns_t` is Pillow's `resize(..., BILINEAR, reducing_gap)` of a float image:
    the integer box reduction and the antialiased bilinear pass composed per axis."""
    axes = []
    for in_size, out_size in zip(in_hw, out_hw):
        factor = int(in_size / out_size / reducing_gap) or 1 if reducing_gap is not None else 1
        # Image.resize reduces both axes when either factor exceeds 1; a factor of 1 is the identity
        reduce = _box_reduce_weights(in_size, factor)
        axes.append(bilinear_weights(reduce.shape[0], in_size / factor, out_size) @ reduce)
    rows, columns = axes
    return rows.astype(np.float32), np.ascontiguousarray(columns.T, dtype=np.float32)


def resize_like_pillow(image: np.ndarray, out_hw: tuple[int, int],
                       reducing_gap: float | None = None) -> np.ndarray:
    """`Image.fromarray(image, "F").resize((w, h), BILINEAR, reducing_gap=...)` as float32 for a
    2D float image (to float32 rounding), without a round trip through Pillow."""
    rows, columns_t = resize_weights(tuple(image.shape), (int(out_hw[0]), int(out_hw[1])), reducing_gap)
    return rows @ (np.asarray(image, dtype=np.float32) @ columns_t)
