"""Films of another pixel spacing than a refiner's training films.

A first stage sees the whole film letterboxed to its input, so a film's pixel size does not
matter to it. A refiner reads fixed-size patches cut in pixels: a film of 0.2 mm pixels shown to
a refiner trained on 0.1 mm films gives patches with the anatomy at half the scale it learnt
(on test1 reduced to half resolution the cascade read 2.53 mm, against 1.48 with this module).
When the film's spacing is known (DICOM, `--spacing`), the runtime resamples it so that one pixel
is one patch pixel of the finest refiner, and cuts the patches there.

A film that comes without one (a PNG or JPEG export) is measured against the anatomy instead: the
refiner's contract records how large its training films' landmark sets are in mm
(`landmark_size_mm`: mean and relative spread of their RMS distance to their centroid; ISBI:
44.4 mm, 6.4%), and the first stage's landmarks give the film's size in pixels. Only an estimate
further from the training spacing than skulls differ in size (ESTIMATE_SIGMAS spreads) is acted on,
so films at the training spacing keep the usual path.

A film that does state a spacing is checked against its anatomy the same way: a stated spacing that
makes the skull far larger or smaller than any training skull (a slipped decimal, a DICOM's
detector spacing at a different magnification, a resized export with its old header) is kept,
since the device is the authority, but reported (`contradicted_spacing`), because every mm figure
depends on it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from edgeld.core.errors import UserError
from edgeld.core.letterbox import to_unit_float

# Within this relative difference a film counts as at the training spacing and goes through the
# refiners as given (the shipped figures' path); beyond it, it is resampled.
SPACING_TOLERANCE = 0.02
# Spacings further than this factor from the training films' are refused rather than resampled: a
# typo in --spacing would otherwise ask for a film tens of times its size.
MAX_SPACING_RATIO = 4.0
# An anatomy-based spacing estimate is used only beyond this many relative spreads of the training
# films' landmark size from the training spacing (ISBI: 4 x 6.4% = 26%; none of test1's films as
# given is resampled on an estimate: benchmarks/orientation/accuracy-under-change-no-spacing.json).
ESTIMATE_SIGMAS = 4.0
MIN_ESTIMATE_TOLERANCE = 0.1  # however alike the training skulls were


def landmark_size(points: np.ndarray) -> float:
    """RMS distance of (K, 2) points to their centroid, in their units: a landmark set's size."""
    points = np.asarray(points, dtype=np.float64)
    return float(np.sqrt(((points - points.mean(axis=0)) ** 2).sum(axis=1).mean()))


def training_landmark_size(sets_mm: Sequence[np.ndarray]) -> tuple[float, float] | None:
    """(mean size in mm, relative spread) of training films' landmark sets (each (K, 2) in mm), as
    a refiner's contract records it; None for fewer than two films."""
    if len(sets_mm) < 2:
        return None
    sizes = np.array([landmark_size(p) for p in sets_mm])
    return round(float(sizes.mean()), 4), max(round(float(sizes.std() / sizes.mean()), 4), 1e-4)


def estimate_spacing(points: np.ndarray, image_factor: int, size_mm: Sequence[float] | None,
                     film_spacing_mm: Sequence[float] | None) -> float | None:
    """A film's (square) pixel spacing in mm from its first-stage landmarks (`points` in the
    pixels of the image given, that film reduced by `image_factor`), or None when the refiner
    records no landmark size or spacing, or when the estimate is within ESTIMATE_SIGMAS spreads
    of the training spacing (then the film is taken as a training film) or beyond
    MAX_SPACING_RATIO of it (then the first stage has likely not found a skull: no guess)."""
    if size_mm is None or film_spacing_mm is None:
        return None
    size_px = landmark_size(points) * image_factor
    if size_px <= 0:
        return None
    estimate = float(size_mm[0]) / size_px
    trained = float(np.sqrt(film_spacing_mm[0] * film_spacing_mm[1]))
    ratio = estimate / trained
    if abs(ratio - 1) <= max(ESTIMATE_SIGMAS * float(size_mm[1]), MIN_ESTIMATE_TOLERANCE):
        return None
    if not 1 / MAX_SPACING_RATIO <= ratio <= MAX_SPACING_RATIO:
        return None
    return round(estimate, 4)


def contradicted_spacing(points: np.ndarray, image_factor: int, size_mm: Sequence[float] | None,
                         stated_mm: Sequence[float] | None) -> float | None:
    """The square spacing in mm a film's anatomy implies, when the (row, column) spacing it came
    with contradicts it: `estimate_spacing` measured against the stated spacing instead of the
    training films', with the same band and the same refusal to guess beyond MAX_SPACING_RATIO
    (then the first stage has likely not found a skull, and the film's quality verdict speaks
    for it). None when they agree or either is unknown."""
    return estimate_spacing(points, image_factor, size_mm, stated_mm)


def resampling_scale(spacing_mm: Sequence[float] | None, image_factor: int,
                     film_spacing_mm: Sequence[float] | None, patch_factor: int
                     ) -> tuple[float, float] | None:
    """(x, y) factors that bring an image to pixels of `film_spacing_mm * patch_factor`, or None
    when either spacing is unknown or the film is at the training spacing already.

    `spacing_mm` is the (row, column) spacing of the film's own pixels; the image is that film
    reduced by `image_factor` (a reduced decode)."""
    if spacing_mm is None or film_spacing_mm is None:
        return None
    row, col = (float(v) for v in spacing_mm)
    t_row, t_col = (float(v) for v in film_spacing_mm)
    if abs(row / t_row - 1) <= SPACING_TOLERANCE and abs(col / t_col - 1) <= SPACING_TOLERANCE:
        return None
    for ratio in (row / t_row, col / t_col):
        if not 1 / MAX_SPACING_RATIO <= ratio <= MAX_SPACING_RATIO:
            raise UserError(f"pixel spacing {row:g}x{col:g} mm is more than {MAX_SPACING_RATIO:g} "
                            f"times from the {t_row:g}x{t_col:g} mm films the refiner was trained "
                            "on: check the spacing (--spacing, or the DICOM's pixel spacing)")
    return (col * image_factor / (t_col * patch_factor), row * image_factor / (t_row * patch_factor))


def to_refiner_scale(image: np.ndarray, points: np.ndarray, spacing_mm: Sequence[float] | None,
                     image_factor: int, film_spacing_mm: Sequence[float] | None, patch_factor: int
                     ) -> tuple[np.ndarray, np.ndarray, int, tuple[float, float] | None]:
    """What a refiner cuts its patches from: (image, points in it, the image's reduction factor,
    the exact (x, y) resampling to map points back or None). A film at the refiner's training
    spacing (or of unknown spacing) comes back as given; one of another spacing is resampled to
    one pixel per patch pixel (factor `patch_factor`). The runtime's refinement and a refiner's
    calibration patches both go through here, so both see the anatomy at the training scale."""
    scale = resampling_scale(spacing_mm, image_factor, film_spacing_mm, patch_factor)
    if scale is None:
        return image, np.asarray(points, dtype=np.float64), image_factor, None
    resampled, exact = resample(image, scale)
    return resampled, to_resampled(points, exact), patch_factor, exact


def resample(image: np.ndarray, scale: tuple[float, float]) -> tuple[np.ndarray, tuple[float, float]]:
    """The image resized by (x, y) `scale` (antialiased bilinear; 8-bit stays 8-bit, anything else
    becomes float32 in [0, 1]) and the exact (x, y) factors its rounded size gives."""
    h, w = image.shape
    size = (max(1, round(w * scale[0])), max(1, round(h * scale[1])))
    if image.dtype == np.uint8:
        pil = Image.fromarray(image, mode="L")
    else:
        pil = Image.fromarray(to_unit_float(image), mode="F")
    out = np.asarray(pil.resize(size, Image.BILINEAR, reducing_gap=3.0))
    return out, (size[0] / w, size[1] / h)


def to_resampled(points: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """(K, 2) (x, y) pixel points (centres at integers) into the resampled image's pixels."""
    return (np.asarray(points, dtype=np.float64) + 0.5) * np.asarray(scale) - 0.5


def from_resampled(points: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """The inverse of `to_resampled`."""
    return (np.asarray(points, dtype=np.float64) + 0.5) / np.asarray(scale) - 0.5
