"""Which way a film faces, and how to put it upright. numpy + Pillow, no torch.

A lateral cephalogram reaches a device facing right or left, and sometimes rotated by a quarter
turn. A model trained on films of one orientation places every landmark tens of millimetres off on
the others, so the runtime compares a small thumbnail of each input with the eight mirror/rotation
images of a reference thumbnail of upright training films (normalised cross-correlation), turns the
film upright when another orientation matches clearly better, detects, and maps the points back.

The reference is fitted from the model's own training images through the same preprocessing the
runtime uses, and travels in the model contract (`ModelIO.orientation`), so a model trained on
another anatomy or device carries its own. The check costs a (S, S) resize of the model input,
well under a millisecond; only a film that is not upright pays for a second letterbox.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable

import numpy as np

from edgeld.core.letterbox import REDUCING_GAP, Letterbox, preprocess

THUMBNAIL_SIZE = 48
# Reorient only when another orientation beats "as given" by this much normalised correlation:
# on the 150 test1 films shown in all eight orientations the right one wins by 0.165 at the least
# (1st percentile 0.22), so a smaller gap means the thumbnail is no evidence either way.
# A reference is used only when it tells its own training films apart from their mirror and
# quarter-turn views by at least twice that (5th percentile of the films' margins): films that
# look alike either way (symmetric test patterns, say) get no correction rather than a coin toss.
SEPARATION_PERCENTILE = 5.0
# A film is turned only when its winning view also looks like a film: a correlation of at least
# this share of the weakest training film's (each against the others). Cropped or padded films
# from another field of view correlate weakly with every view, and are left as given rather than
# turned on noise (test1 films cropped by up to 25% a side were turned 2 times in 30 without it).
TURN_SCORE_FACTOR = 0.6
MIN_MARGIN = 0.05


@dataclass(frozen=True)
class Orientation:
    """How an observed film relates to an upright one: observed = rot90(mirror?(upright), turns),
    with `mirrored` a left-right flip and `turns` counter-clockwise quarter turns (numpy's rot90)."""

    mirrored: bool = False
    turns: int = 0

    @property
    def is_upright(self) -> bool:
        return not self.mirrored and self.turns % 4 == 0

    def describe(self) -> str:
        """Plain words, e.g. 'mirrored left-right, rotated 90 degrees counter-clockwise'."""
        parts = ["mirrored left-right"] if self.mirrored else []
        if self.turns % 4:
            parts.append(f"rotated {90 * (self.turns % 4)} degrees counter-clockwise")
        return ", ".join(parts) or "upright"

    def apply(self, upright: np.ndarray) -> np.ndarray:
        """The observed view of an upright 2D array."""
        out = upright[:, ::-1] if self.mirrored else upright
        return np.rot90(out, self.turns % 4)

    def to_upright(self, observed: np.ndarray) -> np.ndarray:
        """The upright view of an observed 2D array (a contiguous copy unless already upright)."""
        if self.is_upright:
            return observed
        out = np.rot90(observed, -(self.turns % 4))
        return np.ascontiguousarray(out[:, ::-1] if self.mirrored else out)

    def points_to_observed(self, points: np.ndarray, upright_shape: tuple[int, int]) -> np.ndarray:
        """(..., 2) (x, y) pixel points of the upright image to the observed image's pixels
        (pixel centres at integers)."""
        p = np.array(points, dtype=np.float64)
        h, w = upright_shape
        if self.mirrored:
            p[..., 0] = (w - 1) - p[..., 0]
        for _ in range(self.turns % 4):  # one counter-clockwise turn: (x, y) -> (y, w - 1 - x)
            p = np.stack([p[..., 1], (w - 1) - p[..., 0]], axis=-1)
            h, w = w, h
        return p


ALL_ORIENTATIONS = tuple(Orientation(m, t) for m in (False, True) for t in range(4))


def thumbnail(model_input: np.ndarray, box: Letterbox, mean: float, std: float,
              size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """A (size, size) zero-mean, unit-norm thumbnail of the film inside a normalised (1, H, W)
    model input: the letterbox padding is cut off and the film letterboxed into a square, so a
    quarter turn of the film is a quarter turn of its thumbnail."""
    film = model_input[0, box.pad_top:box.pad_top + box.resized_h,
                       box.pad_left:box.pad_left + box.resized_w] * std + mean
    fit = Letterbox.fit(film.shape, (size, size))
    square = fit.apply(film.astype(np.float32))
    inside = square[fit.pad_top:fit.pad_top + fit.resized_h, fit.pad_left:fit.pad_left + fit.resized_w]
    # the padding takes the film's mean: only the film's content correlates, not its aspect ratio
    centred = np.zeros_like(square)
    centred[fit.pad_top:fit.pad_top + fit.resized_h,
            fit.pad_left:fit.pad_left + fit.resized_w] = inside - inside.mean()
    norm = float(np.linalg.norm(centred))
    return centred / norm if norm > 0 else centred


@dataclass(frozen=True)
class OrientationCheck:
    """The verdict on one film: its orientation, the correlation of the winning orientation with
    the reference (near 1 for a typical film, near 0 for something unlike the training films),
    and the correlation of each of ALL_ORIENTATIONS."""

    orientation: Orientation
    score: float
    scores: tuple[float, ...]


@dataclass(frozen=True)
class OrientationReference:
    """A zero-mean, unit-norm thumbnail of upright training films, the decision margin, and how
    well it separated its own films' upright view from the other seven (`separation`)."""

    template: np.ndarray
    min_margin: float = MIN_MARGIN
    fitted_on: str = ""
    separation: float = 0.0
    min_score: float = 0.0  # the least winning correlation a turn needs (TURN_SCORE_FACTOR)

    @property
    def usable(self) -> bool:
        """Whether the reference tells orientations apart well enough to act on."""
        return self.separation >= 2 * self.min_margin

    def check(self, thumb: np.ndarray) -> OrientationCheck:
        """Which of ALL_ORIENTATIONS the thumbnail shows; 'as given' unless another one wins by
        at least min_margin with a correlation of at least min_score."""
        scores = self._views @ np.asarray(thumb, dtype=np.float64).ravel()
        best = int(np.argmax(scores))
        if scores[best] - scores[0] < self.min_margin or scores[best] < self.min_score:
            best = 0
        return OrientationCheck(ALL_ORIENTATIONS[best], float(scores[best]), tuple(scores.tolist()))

    @cached_property
    def _views(self) -> np.ndarray:
        """The template in each of ALL_ORIENTATIONS, one flattened row each (float64), made
        once rather than per film."""
        return np.stack([o.apply(self.template).ravel() for o in ALL_ORIENTATIONS]).astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (template as base64 float16, row-major) for manifests and checkpoints."""
        data = self.template.astype("<f2").tobytes()
        return {"size": int(self.template.shape[0]), "min_margin": self.min_margin,
                "fitted_on": self.fitted_on, "separation": self.separation,
                "min_score": self.min_score,
                "template_float16_base64": base64.b64encode(data).decode("ascii")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OrientationReference":
        size = int(data["size"])
        raw = base64.b64decode(data["template_float16_base64"])
        if len(raw) != 2 * size * size:
            raise ValueError(f"orientation template holds {len(raw)} bytes, expected {2 * size * size}")
        template = np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(size, size)
        return cls(template, float(data.get("min_margin", MIN_MARGIN)), str(data.get("fitted_on", "")),
                   float(data.get("separation", 0.0)), float(data.get("min_score", 0.0)))


def film_thumbnails(films: Iterable[np.ndarray], height: int, width: int, mean: float, std: float,
                    size: int = THUMBNAIL_SIZE, reducing_gap: float = REDUCING_GAP) -> list[np.ndarray]:
    """Thumbnails of 2D grayscale films for a model of (height, width) input with the given
    normalisation and letterbox resampling, made exactly as the runtime makes them."""
    thumbs = []
    for film in films:
        x, box = preprocess(film, height, width, mean, std, reducing_gap)
        thumbs.append(thumbnail(x, box, mean, std, size))
    return thumbs


def fit_reference(films: Iterable[np.ndarray], height: int, width: int, mean: float, std: float,
                  fitted_on: str = "", size: int = THUMBNAIL_SIZE,
                  reducing_gap: float = REDUCING_GAP) -> OrientationReference:
    """The reference of upright 2D grayscale films for such a model."""
    return reference_from_thumbnails(
        film_thumbnails(films, height, width, mean, std, size, reducing_gap), fitted_on)


def reference_from_thumbnails(thumbs: Iterable[np.ndarray], fitted_on: str = "") -> OrientationReference:
    """The normalised mean of upright films' thumbnails (see `thumbnail`)."""
    stack = list(thumbs)
    if not stack:
        raise ValueError("no films to fit an orientation reference on")
    mean = np.mean(np.stack(stack), axis=0)
    centred = mean - mean.mean()
    checks = leave_one_out_checks(stack)
    margins = [check.scores[0] - max(check.scores[1:]) for check in checks]
    separation = round(float(np.percentile(margins, SEPARATION_PERCENTILE)), 4) if margins else 0.0
    min_score = round(TURN_SCORE_FACTOR * min(c.scores[0] for c in checks), 4) if checks else 0.0
    return OrientationReference((centred / np.linalg.norm(centred)).astype(np.float32),
                                fitted_on=fitted_on, separation=separation, min_score=min_score)


def leave_one_out_checks(thumbs: list[np.ndarray]) -> list[OrientationCheck]:
    """Each film's check against a reference of the other films (in sample, a few films would
    always look separable and alike); empty for fewer than two films or featureless ones."""
    if len(thumbs) < 2:
        return []
    total = np.sum(thumbs, axis=0)
    checks = []
    for thumb in thumbs:
        others = total - thumb
        others = others - others.mean()
        norm = float(np.linalg.norm(others))
        if norm == 0:
            return []
        checks.append(OrientationReference((others / norm).astype(np.float32)).check(thumb))
    return checks
