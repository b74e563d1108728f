"""Detection on a film decoded at a reduced size (issue 12, item 2: decode only what is needed).

A JPEG can be decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling; the decode lives in
`edgeld.data.images.load_reduced`) for a fraction of a full decode's time. Reduced pixel i is the
mean of file pixels [f*i, f*i + f), so its centre is at file pixel f*i + (f - 1) / 2: the layout
`PIL.Image.reduce(f)` gives, which the refiners' patch grid already uses (runtime/patches.py).
One reduced decode serves the whole chain: the first stage letterboxes it, each refiner cuts its
patches from it after reducing it by the rest of its own factor (patch_factor / f).

`max_reduction` is the one rule saying how far a detector's chain lets a film be reduced.
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from edgeld.core.letterbox import Letterbox
from edgeld.runtime.patches import PatchSpec

if TYPE_CHECKING:
    from edgeld.runtime.detector import Detection, LandmarkDetector

# The first stage letterboxes with Pillow's resize (core/letterbox.py): an integer box reduction,
# then an antialiased bilinear resize over what is left (below 2 x the model's reducing_gap). A
# reduced decode must leave at least this many film pixels per model input pixel on each axis.
# 1.5 lets a 2400x1935 film go to 1/4 (600x484, 1.56x) for the student alone: measured on ISBI
# test1, see README "How it works".
FIRST_STAGE_MARGIN = 1.5
LARGEST_FACTOR = 8  # libjpeg scales by 1/2, 1/4, 1/8


def max_reduction(detector: "LandmarkDetector", src_hw: tuple[int, int]) -> int:
    """The largest power-of-two factor (1, 2, 4 or 8) by which a film of `src_hw` (height, width)
    may be decoded reduced for `detector` and its refiners: the first stage keeps at least
    FIRST_STAGE_MARGIN film pixels per input pixel; each refiner's patch grid (patch_factor film
    pixels per patch pixel) stays a whole number of reduced pixels, so patch_factor 2 allows 2;
    the usability check's smallest side still holds."""
    io = detector.io
    if io.patch_size:
        raise ValueError("a refinement stage takes no film of its own: ask its first stage")
    box = Letterbox.fit(src_hw, (io.input_height, io.input_width))
    room = min(src_hw[0] / box.resized_h, src_hw[1] / box.resized_w) / FIRST_STAGE_MARGIN
    factor = 1
    while factor * 2 <= min(room, LARGEST_FACTOR):
        factor *= 2
    stage = detector.refiner
    while stage is not None:
        factor = math.gcd(factor, int(stage.io.patch_factor))
        stage = stage.refiner
    if detector.quality is not None:  # the reduced film must not look too small to measure
        while factor > 1 and -(-min(src_hw) // factor) < detector.quality.min_side_px:
            factor //= 2
    return factor


def reduced_to_original(points: np.ndarray, factor: int) -> np.ndarray:
    """(..., 2) (x, y) points in pixels of a film reduced by `factor` to the film's own pixels."""
    return PatchSpec(factor=factor).reduced_to_source(points)


def detect_reduced(detector: "LandmarkDetector", images: Sequence[np.ndarray],
                   factors: Sequence[int],
                   spacings_mm: Sequence[float | Sequence[float] | None] | None = None
                   ) -> list["Detection"]:
    """Landmarks of films each decoded reduced by its factor, in the ORIGINAL films' pixels, with
    the original films' spacings (what `detect_batch` gives on the full decodes, within the
    tolerance measured in tests/test_reduced_decode.py)."""
    found = detector.detect_batch(images, spacings_mm, image_factors=factors)
    return [d if f == 1 else dataclasses.replace(d, landmarks_px=reduced_to_original(d.landmarks_px, f))
            for d, f in zip(found, factors)]
