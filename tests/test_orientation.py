"""Films facing the other way or turned by quarter turns: found, put upright, points mapped back."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import REAL_DATA, needs_real_data
from edgeld.data.images import load_grayscale
from edgeld.runtime.orientation import (ALL_ORIENTATIONS, Orientation, OrientationReference,
                                        fit_reference)


@pytest.mark.parametrize("turn", ALL_ORIENTATIONS, ids=lambda o: o.describe())
def test_points_follow_the_pixels_exactly(turn):
    rng = np.random.default_rng(0)
    upright = np.zeros((7, 11))
    points = np.array([[0, 0], [10, 6], [3, 5], [9, 1]], dtype=float)
    for x, y in points.astype(int):
        upright[y, x] = 1.0
    observed = turn.apply(upright)
    moved = turn.points_to_observed(points, upright.shape)
    for (x, y) in moved:
        assert observed[int(round(y)), int(round(x))] == 1.0
    assert np.array_equal(turn.to_upright(observed), upright)
    # subpixel points move by the same affine map as pixel centres
    sub = points + rng.uniform(-0.5, 0.5, points.shape)
    inner = turn.points_to_observed(sub, upright.shape) - moved
    assert np.allclose(np.linalg.norm(inner, axis=1), np.linalg.norm(sub - points, axis=1))


def _asymmetric_film(rng: np.random.Generator, hw=(240, 200)) -> np.ndarray:
    """A film-like image whose halves differ: a bright mass upper left, a ramp to the right."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    img = 30 + 60 * xx / w + 10 * rng.random((h, w))
    img += 150 * np.exp(-((xx - 0.3 * w) ** 2 + (yy - 0.35 * h) ** 2) / (2 * (0.12 * w) ** 2))
    img[int(0.7 * h):, int(0.6 * w):int(0.8 * w)] += 50
    return np.clip(img, 0, 255).astype(np.uint8)


def test_reference_tells_all_eight_orientations_apart_and_round_trips():
    rng = np.random.default_rng(1)
    reference = fit_reference([_asymmetric_film(rng) for _ in range(6)], 96, 80, 0.5, 0.25,
                              fitted_on="synthetic")
    again = OrientationReference.from_dict(reference.to_dict())
    assert again.fitted_on == "synthetic" and again.min_margin == reference.min_margin
    assert np.allclose(again.template, reference.template, atol=1e-3)
    film = _asymmetric_film(rng)
    from edgeld.core.letterbox import preprocess
    from edgeld.runtime.orientation import thumbnail

    for turn in ALL_ORIENTATIONS:
        x, box = preprocess(np.ascontiguousarray(turn.apply(film)), 96, 80, 0.5, 0.25)
        thumb = thumbnail(x, box, 0.5, 0.25)
        check = again.check(thumb)
        assert check.orientation == turn, turn.describe()
        assert check.score > 0.8
        # the oriented templates made once per reference score as each view made per film would
        per_view = [float(np.sum(thumb * o.apply(again.template))) for o in ALL_ORIENTATIONS]
        assert np.allclose(check.scores, per_view, atol=1e-5)


def test_a_featureless_image_stays_as_given():
    reference = fit_reference([_asymmetric_film(np.random.default_rng(2))], 96, 80, 0.5, 0.25)
    from edgeld.core.letterbox import preprocess
    from edgeld.runtime.orientation import thumbnail

    x, box = preprocess(np.full((240, 200), 128, np.uint8), 96, 80, 0.5, 0.25)
    check = reference.check(thumbnail(x, box, 0.5, 0.25))
    assert check.orientation == Orientation() and check.score == 0.0


def test_models_without_a_reference_measure_films_as_given(trained_tiny):
    from edgeld.load import open_detector

    detector = open_detector(str(trained_tiny["checkpoint"]))
    assert detector.orientation is None and detector.check_orientation(np.zeros((9, 9))) is None


@needs_real_data
def test_shipped_student_finds_every_orientation_of_test1_films_and_maps_points_back():
    from edgeld.load import open_detector

    detector = open_detector("isbi2015-student", refiner="isbi2015-refiner")
    for image_id in ("151.jpg", "222.jpg", "300.jpg"):
        film = load_grayscale(REAL_DATA / "images" / image_id)
        upright = detector.detect(film)
        assert upright.orientation == "upright"
        for turn in ALL_ORIENTATIONS[1:]:
            seen = detector.detect(np.ascontiguousarray(turn.apply(film)))
            assert seen.orientation == turn.describe()
            expected = turn.points_to_observed(upright.landmarks_px, film.shape)
            assert np.allclose(seen.landmarks_px, expected, atol=1e-6)


@needs_real_data
def test_orientation_cli_fit_is_reproducible_and_check_reports(tmp_path):
    out = tmp_path / "student.safetensors"
    cmd = [sys.executable, "-m", "edgeld", "orientation", "fit", "isbi2015-student",
           "--data", str(REAL_DATA), "--split", "train", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    from edgeld.models.registry import builtin_path

    assert out.read_bytes() == builtin_path("isbi2015-student").read_bytes()
    check = subprocess.run([sys.executable, "-m", "edgeld", "orientation", "check", str(out),
                            str(REAL_DATA / "images" / "151.jpg")], capture_output=True, text=True)
    assert check.returncode == 0 and "151.jpg: upright (correlation" in check.stdout


@pytest.mark.parametrize("bad, words", [
    ("film.jpg", "load_grayscale('film.jpg')"),
    (np.zeros(5), "2D grayscale"),
    (np.full((64, 64), np.nan, np.float32), "NaN or infinite"),
    (np.full((64, 64), np.inf), "NaN or infinite"),
])
def test_detect_refuses_what_it_cannot_measure_with_a_message(trained_tiny, bad, words):
    from edgeld.core.errors import UserError
    from edgeld.runtime import LandmarkDetector

    detector = LandmarkDetector(trained_tiny["onnx"])
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        detector.detect(bad)


@needs_real_data
def test_a_turn_the_network_does_not_confirm_is_not_made():
    """The thumbnail proposes, the heatmaps decide: a wrong proposal leaves the film as given."""
    from edgeld.load import open_detector
    from edgeld.runtime.orientation import OrientationCheck

    detector = open_detector("isbi2015-student")
    film = load_grayscale(REAL_DATA / "images" / "151.jpg")
    expected = detector.detect(film)

    class Misled:  # a reference that calls every film mirrored
        template = np.zeros((48, 48))

        def check(self, thumb):
            return OrientationCheck(Orientation(mirrored=True), 0.9, (0.5, 0, 0, 0, 0.9, 0, 0, 0))

    detector.orientation = Misled()
    result = detector.detect(film)
    assert result.orientation == "upright"
    assert np.allclose(result.landmarks_px, expected.landmarks_px, atol=1e-3)  # batch of 2 vs 1
    mirrored = detector.detect(np.ascontiguousarray(film[:, ::-1]))  # here the turn is right
    assert mirrored.orientation == "mirrored left-right"
