"""Knowing when not to answer: images the model cannot measure are refused with a reason."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REAL_DATA, needs_real_data
from edgeld.core.letterbox import Letterbox
from edgeld.runtime.quality import Quality, QualitySpec, fit_quality, is_constant

SPEC = QualitySpec(min_side_px=160, max_aspect=2.5, min_correlation=0.3, min_confidence=0.5)


@pytest.mark.parametrize("shape, constant, corr, reason", [
    ((10, 10), False, 0.9, "too small to measure"),
    ((100, 5000), False, 0.9, "too small to measure"),
    ((400, 1500), False, 0.9, "not a film's proportions"),
    ((2400, 1935), True, 0.0, "blank or constant image"),
    ((2400, 1935), False, 0.1, "does not look like this model's films"),
])
def test_before_the_network_refuses_with_the_reason(shape, constant, corr, reason):
    verdict = SPEC.before(shape, constant, corr)
    assert not verdict.usable and verdict.reason.startswith(reason)


def test_a_film_passes_and_weak_heatmaps_do_not():
    before = SPEC.before((2400, 1935), False, 0.9)
    assert before == Quality(True, None, 0.9)
    assert SPEC.after(before, np.full(19, 0.9)).usable
    weak = SPEC.after(before, np.full(19, 0.2))
    assert not weak.usable and weak.reason.startswith("no clear landmark evidence")
    assert QualitySpec.from_dict(SPEC.to_dict()) == SPEC


def test_constant_ignores_the_letterbox_padding():
    box = Letterbox.fit((100, 50), (64, 64))
    x = np.full((1, 64, 64), -2.0, np.float32)  # padding
    x[0, box.pad_top:box.pad_top + box.resized_h, box.pad_left:box.pad_left + box.resized_w] = 2.0
    assert is_constant(x, box)
    x[0, box.pad_top, box.pad_left] = 1.0
    assert not is_constant(x, box)


def test_fitted_thresholds_follow_the_weakest_real_film():
    spec = fit_quality([(2400, 1935), (2000, 2000)], [0.9, 0.7], [0.9, 0.8], 160, "x")
    assert spec.min_correlation == pytest.approx(0.175) and spec.min_confidence == pytest.approx(0.48)
    assert spec.max_aspect == pytest.approx(2 * 2400 / 1935, abs=0.01)


def _corpus(film: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1600, 0:1600]
    chest = np.full((1600, 1600), 200.0)  # a non-cephalometric X-ray-like image: two lung fields
    for cx in (520, 1080):
        chest -= 150 * np.exp(-(((xx - cx) / 240) ** 2 + ((yy - 800) / 480) ** 2))
    return {
        "blank": np.zeros((2400, 1935), np.uint8),
        "white": np.full((2400, 1935), 255, np.uint8),
        "noise": rng.integers(0, 256, (2400, 1935), dtype=np.uint8),
        "tiny": rng.integers(0, 256, (10, 10), dtype=np.uint8),
        "strip": rng.integers(0, 256, (100, 5000), dtype=np.uint8),
        "chest-like": np.clip(chest + rng.normal(0, 5, chest.shape), 0, 255).astype(np.uint8),
    }


@needs_real_data
def test_shipped_cascade_refuses_the_corpus_and_puts_turned_films_upright():
    from edgeld.data.images import load_grayscale
    from edgeld.load import open_detector
    from edgeld.runtime.orientation import ALL_ORIENTATIONS

    detector = open_detector("isbi2015-student", refiner="isbi2015-refiner")
    film = load_grayscale(REAL_DATA / "images" / "151.jpg")
    for name, image in _corpus(film).items():
        result = detector.detect(image)
        assert not result.quality.usable, name
        assert result.to_dict(name)["landmarks"] == []
    upright = detector.detect(film)
    for turn in ALL_ORIENTATIONS:  # rotated 90/180/270, mirrored, upside down (= mirrored + 180)
        seen = detector.detect(np.ascontiguousarray(turn.apply(film)))
        assert seen.quality.usable and seen.orientation == turn.describe()
        back = turn.points_to_observed(upright.landmarks_px, film.shape)
        assert np.abs(seen.landmarks_px - back).max() * 0.1 < 0.1  # mm


@needs_real_data
def test_real_test1_films_are_all_usable():
    from edgeld.data import open_dataset
    from edgeld.evaluate import evaluate
    from edgeld.load import open_detector

    result = evaluate(open_detector("isbi2015-student"), open_dataset(REAL_DATA), "test1",
                      progress=False)
    assert result["n_unusable"] <= 1  # the target: at most 1 of 150
    assert len(result["per_image"]) == 150 and all("mre_mm" in r for r in result["per_image"])


@needs_real_data
def test_predict_exits_2_for_an_unusable_image_and_keep_going_writes_the_rest(tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((2400, 1935), np.uint8)).save(blank)
    film = REAL_DATA / "images" / "151.jpg"
    out = tmp_path / "out.json"
    base = [sys.executable, "-m", "edgeld", "predict", "isbi2015-student", str(film), str(blank),
            "--json", str(out)]
    strict = subprocess.run(base, capture_output=True, text=True)
    assert strict.returncode == 2 and not out.exists()
    assert strict.stderr.strip() == f"error: {blank}: not usable: blank or constant image"
    going = subprocess.run(base + ["--keep-going", str(tmp_path / "missing.png")],
                           capture_output=True, text=True)
    assert going.returncode == 2 and "Traceback" not in going.stderr
    assert "not usable: blank or constant image" in going.stderr and "missing.png" in going.stderr
    records = json.loads(out.read_text())
    assert [len(r["landmarks"]) for r in records] == [19, 0]
    assert records[1]["quality"] == {"usable": False, "reason": "blank or constant image",
                                     "score": 0.0}
    assert records[0]["quality"]["usable"] and records[0]["quality"]["score"] > 0.5
