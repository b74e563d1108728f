"""Training-time augmentation on letterboxed inputs: random affine, elastic deformation and intensity
changes. numpy+Pillow.

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


def random_intensity(rng: np.random.Generator, image: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Exposure variation on a [0, 1] image: gamma, contrast, brightness and mild noise.

    `strength` scales every range (1: the default recipe's; the same random draws at any strength)."""
    # float32 throughout (same random draws as before): this runs per image per training step
    k = float(strength)
    gamma = np.float32(math.exp(rng.uniform(-0.35 * k, 0.35 * k)))
    out = np.power(np.clip(image, 0.0, 1.0, dtype=np.float32), gamma)
    contrast, brightness = rng.uniform(1 - 0.2 * k, 1 + 0.2 * k), rng.uniform(-0.08 * k, 0.08 * k)
    out = (out - 0.5) * np.float32(contrast) + np.float32(0.5 + brightness)
    out += rng.normal(0.0, rng.uniform(0.0, 0.02 * k), size=image.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


# Elastic deformation: a smooth random displacement field d over the output image, applied as a
# backward warp (output pixel q samples the input at q + d(q)). d is a uniform cubic B-spline over a
# coarse grid of control displacements: its weights are non-negative and sum to one, so |d| never
# exceeds the largest control displacement, and the same function is evaluated for the dense field
# and at any sub-pixel landmark, which is what lets the landmarks follow the pixels exactly.
ELASTIC_GRID = 5  # control points per side


def elastic_limit_px(height: int, width: int, grid: int = ELASTIC_GRID) -> float:
    """The largest control displacement that keeps x -> x + d(x) a contraction-perturbed identity:
    below it |dd/dx| + |dd/dy| < 1, so the warp never folds and the point inversion converges.
    (A B-spline's slope is at most the largest control difference, 2 * max_px, over the spacing.)"""
    return 1.0 / (2 * (grid - 1) / max(height - 1, 1) + 2 * (grid - 1) / max(width - 1, 1))


def random_elastic(rng: np.random.Generator, max_px: float, grid: int = ELASTIC_GRID) -> np.ndarray:
    """Control displacements (2, grid, grid) in input pixels ((dy, dx)), each uniform in ±max_px."""
    return rng.uniform(-max_px, max_px, size=(2, grid, grid))


def _bspline_weights(coords: np.ndarray, size: int, grid: int) -> np.ndarray:
    """(N, grid) cubic B-spline weights of pixel-centre coordinates along one side of `size` pixels,
    control points spaced evenly from the first pixel centre to the last; indices past the ends clamp."""
    t = np.asarray(coords, dtype=np.float64) / max(size - 1, 1) * (grid - 1)
    base = np.floor(t)
    f = t - base
    basis = ((1 - f) ** 3 / 6, (3 * f ** 3 - 6 * f ** 2 + 4) / 6,
             (-3 * f ** 3 + 3 * f ** 2 + 3 * f + 1) / 6, f ** 3 / 6)
    weights = np.zeros((t.size, grid))
    rows = np.arange(t.size)
    for offset, b in zip(range(-1, 3), basis):
        index = np.clip(base.astype(np.int64) + offset, 0, grid - 1)
        np.add.at(weights, (rows, index), b)
    return weights


def elastic_displacement(control: np.ndarray, height: int, width: int,
                         points: np.ndarray | None = None) -> np.ndarray:
    """The displacement field (2, H, W) at every pixel centre, or (N, 2) ((dx, dy)) at (N, 2) points."""
    grid = control.shape[-1]
    if points is None:
        wy = _bspline_weights(np.arange(height), height, grid)
        wx = _bspline_weights(np.arange(width), width, grid)
        return np.stack([wy @ c @ wx.T for c in control])
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    wy = _bspline_weights(pts[:, 1], height, grid)
    wx = _bspline_weights(pts[:, 0], width, grid)
    dy, dx = (np.einsum("ni,ij,nj->n", wy, c, wx) for c in control)
    return np.stack([dx, dy], axis=1)


def elastic_warp_image(image: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Backward-warp a float32 2D image: out[q] = image[q + d(q)] (bilinear, zero fill)."""
    h, w = image.shape
    dy, dx = elastic_displacement(control, h, w).astype(np.float32)
    # sample a zero-padded copy so that pixels near the border blend toward zero, as Pillow's fill;
    # float32 source coordinates are good to 3e-5 px at these sizes
    padded = np.pad(image.astype(np.float32, copy=False), 1).ravel()
    sy = np.clip(np.arange(1, h + 1, dtype=np.float32)[:, None] + dy, 0, h + 1)
    sx = np.clip(np.arange(1, w + 1, dtype=np.float32)[None, :] + dx, 0, w + 1)
    y0, x0 = np.minimum(sy.astype(np.int64), h), np.minimum(sx.astype(np.int64), w)  # floor: >= 0
    fy, fx = sy - y0, sx - x0
    i = y0 * (w + 2) + x0
    tl, tr, bl, br = padded[i], padded[i + 1], padded[i + w + 2], padded[i + w + 3]
    top = tl + (tr - tl) * fx
    return top + (bl + (br - bl) * fx - top) * fy


def elastic_warp_points(points: np.ndarray, control: np.ndarray, height: int, width: int,
                        tol: float = 1e-4, max_iter: int = 1000) -> np.ndarray:
    """Where (K, 2) pixel-centre points land under `elastic_warp_image`: the q with q + d(q) = p,
    found by fixed-point iteration q <- p - d(q), a contraction below `elastic_limit_px` (about a
    dozen steps at a third of it); raises if it has not converged to `tol` pixels."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    q = p.copy()
    for _ in range(max_iter):
        nxt = p - elastic_displacement(control, height, width, q)
        step = np.abs(nxt - q).max(initial=0.0)
        q = nxt
        if step < tol:
            return q.reshape(np.shape(points))
    raise ValueError(f"elastic point inversion did not converge (last step {step:.2g} px): "
                     "the displacement field is too strong for its grid")
