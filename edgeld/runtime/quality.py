"""Is this image something the model can measure? A usability verdict per image. numpy, no torch.

An X-ray device hands over whatever it acquired: a blank exposure, a test pattern, a hand, a strip.
Every one of those used to get 19 landmarks. The verdict is made from evidence the detector has
anyway, before and after the network runs:

- before: the image is finite, big enough and of a film's proportions, not constant, and its
  thumbnail correlates with the model's upright training films (runtime/orientation.py) at least
  as well as the thresholds fitted on those films allow;
- after: the first stage's heatmaps are as sharp (mean landmark confidence) as on validation films.

Thresholds travel in the model contract (`io.quality`, see `QualitySpec`), fitted on the model's
own films (`edgeld orientation fit`), never per input.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeld.core.letterbox import Letterbox

# Decisions use a fraction of the weakest evidence a real film showed. The heatmaps are the
# robust evidence: real films, also blurred, noisy, re-exposed, halved or padded, keep a mean
# first-stage confidence >= 0.65 with the shipped student, blank, noise, strips, blobs and a
# chest-like image <= 0.2. The thumbnail correlation drops for films of another field of view
# (0.26 with a 20% black border around test1 films), so only near-zero correlation (noise 0.08,
# the chest-like image -0.06) is refused on it alone.
CONFIDENCE_FACTOR = 0.6
CORRELATION_FACTOR = 0.25


@dataclass(frozen=True)
class Quality:
    """The verdict on one image: usable or not, why not, and the evidence score (the thumbnail's
    correlation with upright training films: about 0.9 for a typical film, near 0 for junk)."""

    usable: bool
    reason: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QualitySpec:
    """Thresholds of a model's usability check."""

    min_side_px: int  # shorter image side: below this a film cannot be measured to the mm
    max_aspect: float  # longer / shorter side: films are near 1.25, strips and crops far beyond
    min_correlation: float  # thumbnail vs upright reference (see runtime/orientation.py)
    min_confidence: float | None = None  # first-stage mean landmark confidence; None: not fitted
    fitted_on: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QualitySpec":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def before(self, shape: tuple[int, int], constant: bool, correlation: float | None) -> Quality:
        """The verdict from the image alone (and its orientation check, when the model has one)."""
        score = 0.0 if correlation is None else round(float(correlation), 4)
        short, long = sorted(shape)
        if short < self.min_side_px:
            return Quality(False, f"too small to measure ({shape[1]}x{shape[0]} px; this model "
                                  f"needs at least {self.min_side_px} px on the shorter side)", score)
        if long / short > self.max_aspect:
            return Quality(False, f"not a film's proportions ({shape[1]}x{shape[0]} px, aspect "
                                  f"{long / short:.1f} > {self.max_aspect:g})", score)
        if constant:
            return Quality(False, "blank or constant image", score)
        if correlation is not None and correlation < self.min_correlation:
            return Quality(False, f"does not look like this model's films (correlation {score:.2f} "
                                  f"< {self.min_correlation:.2f})", score)
        return Quality(True, None, score)

    def after(self, before: Quality, confidence: np.ndarray) -> Quality:
        """The verdict once the first stage has run: its heatmaps must be as sharp as on films."""
        if not before.usable or self.min_confidence is None:
            return before
        mean = float(np.mean(confidence))
        if mean < self.min_confidence:
            return Quality(False, f"no clear landmark evidence (mean confidence {mean:.2f} < "
                                  f"{self.min_confidence:.2f})", before.score)
        return before


def is_constant(model_input: np.ndarray, box: Letterbox) -> bool:
    """Whether the film inside a (normalised) model input carries no structure at all (the
    letterbox padding around it does not count)."""
    film = model_input[..., box.pad_top:box.pad_top + box.resized_h,
                       box.pad_left:box.pad_left + box.resized_w]
    return float(np.ptp(film)) < 1e-6


def fit_quality(shapes: list[tuple[int, int]], correlations: list[float],
                confidences: list[float] | None, min_side_px: int, fitted_on: str) -> QualitySpec:
    """Thresholds from real films: a share of the weakest correlation and confidence seen on them
    (CORRELATION_FACTOR, CONFIDENCE_FACTOR); aspect up to twice the most elongated film's."""
    aspect = max(max(s) / min(s) for s in shapes)
    return QualitySpec(min_side_px=min_side_px, max_aspect=round(2.0 * aspect, 2),
                       min_correlation=round(CORRELATION_FACTOR * min(correlations), 4),
                       min_confidence=(round(CONFIDENCE_FACTOR * min(confidences), 4)
                                       if confidences else None),
                       fitted_on=fitted_on)
