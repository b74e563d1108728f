"""Spatial-softmax heatmap codec.

The network emits one logit map per landmark at 1/stride of its input. Training treats each map as a
categorical distribution over cells and fits it to a normalized Gaussian target (cross-entropy), so
near the peak the logits approach a parabola: log N(u; mu, sigma) = -(u - mu)^2 / (2 sigma^2) + c.
Decoding therefore takes the argmax cell and refines it by the vertex of the parabola through the
peak and its two neighbours on each axis (exact for a sampled Gaussian).

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
        nn, kk = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

        def at(dy: int, dx: int) -> np.ndarray:
            # clamped indices replicate the edge, so neighbours exist at the border
            return logits[nn, kk, np.clip(iy + dy, 0, h - 1), np.clip(ix + dx, 0, w - 1)].astype(np.float64)

        centre = at(0, 0)
        # at the border a neighbour is missing (edge replication repeats the peak): no refinement
        dx = np.where((ix > 0) & (ix < w - 1), _parabola_vertex(at(0, -1), centre, at(0, 1)), 0.0)
        dy = np.where((iy > 0) & (iy < h - 1), _parabola_vertex(at(-1, 0), centre, at(1, 0)), 0.0)
        cells = np.stack([ix + dx, iy + dy], axis=-1)

        peak = flat.max(axis=2)
        # exp(x - peak) <= 1, so the input precision cannot overflow here
        log_z = peak.astype(np.float64) + np.log(
            np.exp(flat - peak[..., None]).sum(axis=2, dtype=np.float64))
        mass = np.zeros_like(log_z)
        for a in (-1, 0, 1):
            for b in (-1, 0, 1):
                inside = (iy + a >= 0) & (iy + a < h) & (ix + b >= 0) & (ix + b < w)
                mass += np.where(inside, np.exp(at(a, b) - log_z), 0.0)
        confidence = np.minimum(mass / self.target_window_mass, 1.0)
        return self.to_pixels(cells), confidence.astype(np.float32), log_z


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
