"""The orientation thumbnail's resize as matrix products equals Pillow's resize to float32 rounding,
and the thumbnail it gives equals the one made through Pillow (what shipped references were fitted
with), so a reference and the films checked against it are made alike."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeld.core.letterbox import REDUCING_GAP, Letterbox, preprocess
from edgeld.core.resample import resize_like_pillow
from edgeld.runtime.orientation import ALL_ORIENTATIONS, reference_from_thumbnails, thumbnail


def _pillow(image: np.ndarray, out_hw: tuple[int, int], gap: float | None) -> np.ndarray:
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F")
    return np.asarray(pil.resize((out_hw[1], out_hw[0]), Image.BILINEAR, reducing_gap=gap))


@pytest.mark.parametrize("in_hw, out_hw, gap", [
    ((384, 310), (48, 39), 3.0),   # the ISBI student's film inside its input, to its thumbnail
    ((385, 311), (48, 39), 3.0),   # partial last blocks in the box reduction
    ((1000, 777), (48, 37), 3.0),  # reduction by 6 and 7
    ((300, 100), (48, 16), 2.0),   # the height shrinks more than twice the width: vertical first
    ((64, 48), (48, 36), 3.0),     # no reduction, bilinear only
    ((20, 30), (32, 48), 3.0),     # enlarging
    ((384, 310), (48, 39), None),  # no reducing gap: one antialiased pass
    ((48, 40), (48, 40), 3.0),     # the same size: a copy
])
def test_resize_matches_pillow(in_hw, out_hw, gap):
    image = np.random.default_rng(0).normal(size=in_hw).astype(np.float32)
    ours, theirs = resize_like_pillow(image, out_hw, gap), _pillow(image, out_hw, gap)
    assert ours.shape == theirs.shape == out_hw and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() < 1e-6
    # a non-contiguous view (the film inside a padded model input) gives the same
    wide = np.zeros((in_hw[0], in_hw[1] + 10), np.float32)
    wide[:, 5:-5] = image
    assert np.array_equal(resize_like_pillow(wide[:, 5:-5], out_hw, gap), ours)


def _pillow_thumbnail(x: np.ndarray, box: Letterbox, mean: float, std: float, size: int = 48) -> np.ndarray:
    """The thumbnail as made through Pillow before 2026-12-03 (un-normalised film, letterboxed)."""
    film = x[0, box.pad_top:box.pad_top + box.resized_h, box.pad_left:box.pad_left + box.resized_w] * std + mean
    fit = Letterbox.fit(film.shape, (size, size))
    inside = fit.apply(film.astype(np.float32), REDUCING_GAP)[
        fit.pad_top:fit.pad_top + fit.resized_h, fit.pad_left:fit.pad_left + fit.resized_w]
    centred = np.zeros((size, size), np.float32)
    centred[fit.pad_top:fit.pad_top + fit.resized_h, fit.pad_left:fit.pad_left + fit.resized_w] = inside - inside.mean()
    return centred / np.linalg.norm(centred)


def test_thumbnail_and_orientation_verdicts_match_the_pillow_ones():
    rng = np.random.default_rng(3)
    films = []
    for h, w in [(2400, 1935), (1200, 1000), (900, 1100), (500, 400)]:
        yy, xx = np.mgrid[0:h, 0:w]
        film = 0.5 + 0.3 * np.sin(xx / (w / 5.0)) * np.cos(yy / (h / 3.0)) + 0.2 * (xx > w * 0.6)
        films.append((np.clip(film + rng.normal(0, 0.05, film.shape), 0, 1) * 255).astype(np.uint8))
    ours, theirs = [], []
    for film in films:
        x, box = preprocess(film, 384, 320, 0.5, 0.25, 1.5)
        ours.append(thumbnail(x, box))
        theirs.append(_pillow_thumbnail(x, box, 0.5, 0.25))
        assert np.abs(ours[-1] - theirs[-1]).max() < 1e-5
    reference = reference_from_thumbnails(theirs[1:])  # fitted the old way, checked the new way
    for film in films[:1]:
        for turn in ALL_ORIENTATIONS:
            x, box = preprocess(np.ascontiguousarray(turn.apply(film)), 384, 320, 0.5, 0.25, 1.5)
            new, old = reference.check(thumbnail(x, box)), reference.check(_pillow_thumbnail(x, box, 0.5, 0.25))
            assert new.orientation == old.orientation
            assert np.allclose(new.scores, old.scores, atol=1e-5)
