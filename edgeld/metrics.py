"""Landmark accuracy: mean radial error (MRE, mm) and successful detection rate (SDR). numpy only."""
from __future__ import annotations

from typing import Sequence

import numpy as np

SDR_RADII_MM = (2.0, 2.5, 3.0, 4.0)


def radial_errors_mm(pred_px: np.ndarray, ref_px: np.ndarray,
                     spacing_mm: np.ndarray | Sequence[float]) -> np.ndarray:
    """Euclidean distances in mm between predicted and reference (x, y) pixels in the original grid.

    pred_px, ref_px: (N, K, 2); spacing_mm: (row, column) for all images, or (N, 2) per image.
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    xy_mm = spacing[..., ::-1]  # (row, col) spacing -> (x, y) order
    if xy_mm.ndim == 2:
        xy_mm = xy_mm[:, None, :]
    diff = (np.asarray(pred_px, dtype=np.float64) - np.asarray(ref_px, dtype=np.float64)) * xy_mm
    return np.sqrt((diff ** 2).sum(axis=-1))


def sdr_percent(errors_mm: np.ndarray, radii_mm: Sequence[float] = SDR_RADII_MM) -> dict[str, float]:
    """Percent of errors within each radius, keyed "2.0", "2.5", ..."""
    errors = np.asarray(errors_mm).ravel()
    return {f"{r:.1f}": float(100.0 * np.mean(errors <= r)) for r in radii_mm}


def summarize(errors_mm: np.ndarray, landmark_names: Sequence[str],
              radii_mm: Sequence[float] = SDR_RADII_MM) -> dict:
    """Overall and per-landmark MRE / SDR for an (N, K) error matrix (the evaluate JSON's fields)."""
    errors = np.asarray(errors_mm, dtype=np.float64)
    if errors.ndim != 2 or errors.shape[1] != len(landmark_names) or errors.shape[0] == 0:
        raise ValueError(f"errors must be (N>0, {len(landmark_names)}), got {errors.shape}")
    return {
        "n_images": int(errors.shape[0]),
        "n_landmarks": int(errors.shape[1]),
        "mre_mm": float(errors.mean()),
        "mre_std_mm": float(errors.std()),
        "sdr_percent": sdr_percent(errors, radii_mm),
        "per_landmark": [
            {"name": name, "mre_mm": float(errors[:, k].mean()),
             "sdr_percent": sdr_percent(errors[:, k], radii_mm)}
            for k, name in enumerate(landmark_names)
        ],
    }


def mean_shape(landmarks_px: np.ndarray, image_hw: np.ndarray) -> np.ndarray:
    """Mean training shape in normalized image coordinates (fractions of width and height), (K, 2)."""
    wh = np.asarray(image_hw, dtype=np.float64)[:, None, ::-1]
    return (np.asarray(landmarks_px, dtype=np.float64) / wh).mean(axis=0)


def place_mean_shape(shape: np.ndarray, image_hw: np.ndarray) -> np.ndarray:
    """The trivial baseline's prediction: the mean shape scaled onto each image, (N, K, 2) pixels."""
    wh = np.asarray(image_hw, dtype=np.float64)[:, None, ::-1]
    return shape[None] * wh
