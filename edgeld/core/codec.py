"""Spatial-softmax heatmap codec.

The network emits one logit map per landmark at 1/stride of its input. Training treats each map as a
categorical distribution over cells and fits it to a normalized Gaussian target (cross-entropy), so
near the peak the logits approach a parabola: log N(u; mu, sigma) = -(u - mu)^2 / (2 sigma^2) + c.
Decoding takes the argmax cell and refines it either by the vertex of the parabola through the
peak and its two neighbours on each axis (exact for a sampled Gaussian; `softargmax_radius` 0), or
by the softmax-weighted mean of the cells within `softargmax_radius` of the peak (a local
soft-argmax). A network's maps are not exact Gaussians: the mean over a window uses the whole blob
rather than three samples of it, and measured 0.09 mm better on the shipped student's validation
films (benchmarks/decode/). The radius is part of the model contract, chosen on validation films
by `edgeld decode fit`.

Heatmap cell (i, j) has its centre at input pixel ((j + 0.5) * stride - 0.5, (i + 0.5) * stride - 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SoftmaxHeatmapCodec:
    """encode: (K, 2) input-pixel points -> (K, h, w) targets; decode: logits -> points, confidence."""

    input_hw: tuple[int, int]
    stride: int = 4
    sigma: float = 1.5
    # 0: parabola-vertex refinement of the peak; r > 0: softmax-weighted mean of the cells within
    # r of the peak (a (2r+1)^2 window, clipped at the map's border)
    softargmax_radius: int = 0

    @property
    def heatmap_hw(self) -> tuple[int, int]:
        return self.input_hw[0] // self.stride, self.input_hw[1] // self.stride

    def to_cells(self, points: np.ndarray) -> np.ndarray:
        """Input-pixel (x, y) to heatmap-cell coordinates."""
        return (np.asarray(points, dtype=np.float64) + 0.5) / self.stride - 0.5

    def to_pixels(self, cells: np.ndarray) -> np.ndarray:
        """Heatmap-cell coordinates to input-pixel (x, y)."""
        return (np.asarray(cells, dtype=np.float64) + 0.5) * self.stride - 0.5

    @property
    def target_window_mass(self) -> float:
        """Probability mass of a target Gaussian in the 3x3 cells around its centre cell."""
        offsets = np.arange(-1, 2)
        g = np.exp(-offsets.astype(np.float64) ** 2 / (2.0 * self.sigma ** 2))
        full = np.exp(-np.arange(-50, 51, dtype=np.float64) ** 2 / (2.0 * self.sigma ** 2))
        return float((g.sum() / full.sum()) ** 2)

    def encode(self, points: np.ndarray) -> np.ndarray:
        """Normalized Gaussian targets (each map sums to 1), float32 of shape (K, h, w)."""
        h, w = self.heatmap_hw
        cells = self.to_cells(points)
        # the Gaussian is separable: an outer product of 1-D profiles, ~20x cheaper than the 2-D exp
        # (training encodes one target per image per step on the CPU)
        gx = np.exp(-(np.arange(w) - cells[:, 0, None]) ** 2 / (2.0 * self.sigma ** 2))
        gy = np.exp(-(np.arange(h) - cells[:, 1, None]) ** 2 / (2.0 * self.sigma ** 2))
        maps = gy[:, :, None] * gx[:, None, :]
        total = (gy.sum(axis=1) * gx.sum(axis=1))[:, None, None]
        # a point far outside the map leaves no mass: fall back to uniform rather than divide by 0
        maps = np.where(total > 1e-12, maps / np.maximum(total, 1e-300), 1.0 / (h * w))
        return maps.astype(np.float32)

    def decode(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logit maps (N, K, h, w) to input-pixel points (N, K, 2) and confidences (N, K)."""
        points, confidence, _ = self.decode_full(logits)
        return points, confidence

    def decode_full(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`decode`, plus each map's log partition function (N, K) (the softmax normaliser),
        for evidence computed from the same maps (runtime/uncertainty.py) without a second pass.

        Confidence is the softmax probability mass in the 3x3 cells around the peak relative to that
        of a training target: 1 for a peak as sharp as the targets, low for a flat or multi-modal map.
        """
        # float32 maps (what every runtime returns) stay float32 for the whole-map passes, which
        # dominate decoding time; the 3x3 neighbourhoods are lifted to float64 for the arithmetic
        logits = np.asarray(logits)
        if logits.dtype != np.float32:
            logits = logits.astype(np.float64)
        n, k, h, w = logits.shape
        flat = logits.reshape(n, k, h * w)
        idx = flat.argmax(axis=2)
        iy, ix = np.divmod(idx, w)
        # one gather of the (2r+1)^2 cells around every peak serves the sub-cell refinement and
        # the confidence (radius >= 1); clamped indices replicate the edge, `inside` marks real cells
        r = max(self.softargmax_radius, 1)
        window, inside = _windows(logits, iy, ix, r)
        centre = window[..., r, r]
        if self.softargmax_radius > 0:
            # relative to the peak every weight is <= 1, so nothing overflows
            weight = np.where(inside, np.exp(window - centre[..., None, None]), 0.0)
            offsets = np.arange(-r, r + 1)
            total = weight.sum(axis=(2, 3))
            dx = (weight.sum(axis=2) * offsets).sum(axis=2) / total
            dy = (weight.sum(axis=3) * offsets).sum(axis=2) / total
        else:
            # at the border a neighbour is missing (edge replication repeats the peak): no refinement
            dx = np.where((ix > 0) & (ix < w - 1),
                          _parabola_vertex(window[..., r, r - 1], centre, window[..., r, r + 1]), 0.0)
            dy = np.where((iy > 0) & (iy < h - 1),
                          _parabola_vertex(window[..., r - 1, r], centre, window[..., r + 1, r]), 0.0)
        cells = np.stack([ix + dx, iy + dy], axis=-1)

        peak = flat.max(axis=2)
        # exp(x - peak) <= 1, so the input precision cannot overflow here
        log_z = peak.astype(np.float64) + np.log(
            np.exp(flat - peak[..., None]).sum(axis=2, dtype=np.float64))
        near = np.s_[..., r - 1:r + 2, r - 1:r + 2]  # the 3x3 cells around the peak
        mass = np.where(inside[near], np.exp(window[near] - log_z[..., None, None]), 0.0).sum(axis=(2, 3))
        confidence = np.minimum(mass / self.target_window_mass, 1.0)
        return self.to_pixels(cells), confidence.astype(np.float32), log_z


def _windows(logits: np.ndarray, iy: np.ndarray, ix: np.ndarray, r: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """The (N, K, 2r+1, 2r+1) logits around each peak (float64, edge-replicated at the border)
    and whether each window cell lies inside the map."""
    n, k, h, w = logits.shape
    offsets = np.arange(-r, r + 1)
    rows = iy[..., None, None] + offsets[:, None]   # (N, K, 2r+1, 1)
    cols = ix[..., None, None] + offsets[None, :]   # (N, K, 1, 2r+1)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    nn = np.arange(n)[:, None, None, None]
    kk = np.arange(k)[None, :, None, None]
    window = logits[nn, kk, np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)].astype(np.float64)
    return window, inside


def _parabola_vertex(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Offset in (-0.5, 0.5) of the vertex of the parabola through three equally spaced samples."""
    # the offset is scale-free: a quarter of each sample (exact, a power of two) keeps the sums
    # below from overflowing to inf, and then NaN, for finite logits near the float64 limit
    left, centre, right = 0.25 * left, 0.25 * centre, 0.25 * right
    curvature = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = 0.5 * (left - right) / curvature
    offset = np.where(curvature < -0.25e-12, offset, 0.0)
    return np.clip(offset, -0.5, 0.5)
