"""Films of another pixel spacing than the refiner's training films: the refiner's contract records
its films' spacing, and the runtime resamples a film of another known spacing before cutting
patches (edgeld/runtime/spacing.py)."""
import numpy as np
import pytest
from PIL import Image

from conftest import REAL_DATA, needs_real_data, synthetic_image, synthetic_points
from edgeld.core.contract import HeatmapSpec, InputSpec, ModelIO
from edgeld.core.errors import UserError
from edgeld.load import open_detector
from edgeld.model_ref import resolve_model
from edgeld.runtime.spacing import (contradicted_spacing, estimate_spacing, from_resampled,
                                   landmark_size, resample, resampling_scale,
                                   training_landmark_size, to_resampled)


@pytest.fixture
def refined_film_shapes(monkeypatch) -> list[tuple[int, ...]]:
    """The shape of every film a refiner cuts its patches from, in call order."""
    from edgeld.runtime.detector import LandmarkDetector

    shapes: list[tuple[int, ...]] = []
    original = LandmarkDetector.refine

    def spy(self, film, points, image_factor=1):
        shapes.append(film.shape)
        return original(self, film, points, image_factor)

    monkeypatch.setattr(LandmarkDetector, "refine", spy)
    return shapes


def _io(**entries) -> ModelIO:
    return ModelIO(InputSpec(64, 64), HeatmapSpec(), ("a", "b"), patch_size=64, patch_factor=2,
                   **entries)


def test_contract_carries_the_spacing_only_when_set():
    plain = _io().to_dict()
    assert "film_spacing_mm" not in plain  # older contracts keep their bytes when rewritten
    assert ModelIO.from_dict(plain).film_spacing_mm is None
    flat = _io(film_spacing_mm=(0.1, 0.12)).to_dict()
    assert flat["film_spacing_mm"] == [0.1, 0.12]
    assert ModelIO.from_dict(flat).film_spacing_mm == (0.1, 0.12)
    for bad in ([0.1], [0.1, -1], "0.1", [0.1, "x"]):
        with pytest.raises(ValueError, match="film_spacing_mm"):
            ModelIO.from_dict({**flat, "film_spacing_mm": bad})


def test_resampling_scale_by_case():
    assert resampling_scale(None, 1, (0.1, 0.1), 2) is None  # the film's spacing unknown
    assert resampling_scale((0.2, 0.2), 1, None, 2) is None  # the refiner's unknown
    assert resampling_scale((0.101, 0.099), 1, (0.1, 0.1), 2) is None  # within the tolerance
    assert resampling_scale((0.1, 0.1), 2, (0.1, 0.1), 2) is None  # a reduced decode, as before
    # 0.2 mm pixels to 0.2 mm patch pixels: as is; 0.15 x 0.3 mm pixels, a 1/2 decode: 1.5 and 3
    assert resampling_scale((0.2, 0.2), 1, (0.1, 0.1), 2) == pytest.approx((1.0, 1.0))
    assert resampling_scale((0.3, 0.15), 2, (0.1, 0.1), 2) == pytest.approx((1.5, 3.0))
    for typo in ((1.0, 1.0), (0.1, 0.01)):  # a slip of the decimal point is refused, not obeyed
        with pytest.raises(UserError, match="more than 4 times"):
            resampling_scale(typo, 1, (0.1, 0.1), 2)


def test_spacing_estimate_by_case():
    square = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]])
    assert landmark_size(square) == pytest.approx(50 * np.sqrt(2))
    size = (landmark_size(square) * 0.1, 0.05)  # training films: this set at 0.1 mm, 5% spread
    trained = (0.1, 0.1)
    assert estimate_spacing(square, 1, None, trained) is None  # a refiner without the record
    assert estimate_spacing(square, 1, size, None) is None
    assert estimate_spacing(square * 1.15, 1, size, trained) is None  # skulls differ: as given
    assert estimate_spacing(square / 2, 1, size, trained) == pytest.approx(0.2)
    assert estimate_spacing(square / 4, 2, size, trained) == pytest.approx(0.2)  # a 1/2 decode
    assert estimate_spacing(square * 2, 1, size, trained) == pytest.approx(0.05)
    assert estimate_spacing(square / 10, 1, size, trained) is None  # no skull: no guess
    assert estimate_spacing(np.zeros((4, 2)), 1, size, trained) is None
    assert training_landmark_size([square]) is None
    sizes = training_landmark_size([square * 0.1, square * 0.11])
    assert sizes[0] == pytest.approx(landmark_size(square) * 0.105, abs=1e-3)
    assert sizes[1] == pytest.approx(0.0476, abs=1e-3)


def test_a_stated_spacing_is_checked_against_the_anatomy():
    square = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]])
    size = (landmark_size(square) * 0.1, 0.05)  # training skulls: this set at 0.1 mm, 5% spread
    assert contradicted_spacing(square, 1, size, (0.1, 0.1)) is None  # agrees
    assert contradicted_spacing(square, 1, size, (0.115, 0.115)) is None  # a larger skull, or magnified
    assert contradicted_spacing(square, 1, size, (0.25, 0.25)) == pytest.approx(0.1)  # a slip
    assert contradicted_spacing(square, 1, size, (0.05, 0.05)) == pytest.approx(0.1)
    assert contradicted_spacing(square / 2, 2, size, (0.2, 0.2)) == pytest.approx(0.1)  # a 1/2 decode
    assert contradicted_spacing(square / 2, 1, size, (0.2, 0.2)) is None  # a true 0.2 mm film
    assert contradicted_spacing(square, 1, size, (1.0, 1.0)) is None  # no skull found: no verdict
    assert contradicted_spacing(square, 1, None, (0.25, 0.25)) is None  # a refiner without the record
    assert contradicted_spacing(square, 1, size, None) is None  # nothing stated: estimate_spacing's case


def test_points_survive_resampling_both_ways():
    image = np.zeros((100, 80), np.uint8)
    image[40, 30] = 255
    resampled, exact = resample(image, (2.0, 2.0))
    assert resampled.shape == (200, 160) and exact == (2.0, 2.0)
    # a pixel's centre at (30, 40) is the centre of the 2x2 block (60.5, 80.5) after
    assert np.allclose(to_resampled(np.array([[30.0, 40.0]]), exact), [[60.5, 80.5]])
    peak = np.unravel_index(np.argmax(resampled.astype(float)), resampled.shape)
    assert abs(peak[1] - 60.5) <= 0.5 and abs(peak[0] - 80.5) <= 0.5
    back = from_resampled(to_resampled(np.array([[30.0, 40.0], [1.5, 7.25]]), exact), exact)
    assert np.allclose(back, [[30.0, 40.0], [1.5, 7.25]])


def test_refiner_records_its_training_films_spacing(refiner, trained_tiny):
    from edgeld.data import open_dataset

    io = resolve_model(refiner["checkpoint"]).io
    assert io.film_spacing_mm == (0.2, 0.2)
    # and how large its training films' landmark sets are in mm (the films it did not validate on)
    held = set(resolve_model(refiner["checkpoint"]).metadata["training"]["val_images"])
    dataset = open_dataset(trained_tiny["data"])
    sets = [s.reference("senior") * 0.2 for s in dataset.split("train") if s.image_id not in held]
    assert io.landmark_size_mm == training_landmark_size(sets)
    assert 0 < io.landmark_size_mm[1] < 0.5


def test_a_film_at_the_training_spacing_takes_the_usual_path(refiner, trained_tiny):
    rng = np.random.default_rng(11)
    image = synthetic_image(rng, synthetic_points(rng))
    cascade = open_detector(str(trained_tiny["checkpoint"]), refiner=refiner["checkpoint"])
    assert np.array_equal(cascade.detect(image, 0.2).landmarks_px, cascade.detect(image).landmarks_px)


def test_a_finer_film_with_its_spacing_is_refined_at_the_training_scale(refiner, trained_tiny,
                                                                       refined_film_shapes):
    """A film at twice the resolution (0.1 mm pixels) reaches the refiner resampled to its
    training films' 0.2 mm: the refiner is given the original-size film's pixels."""
    rng = np.random.default_rng(12)
    image = synthetic_image(rng, synthetic_points(rng))
    fine = np.asarray(Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2),
                                                    Image.BILINEAR))
    cascade = open_detector(str(trained_tiny["checkpoint"]), refiner=refiner["checkpoint"])
    found = cascade.detect(fine, 0.1).landmarks_px
    assert refined_film_shapes == [image.shape]
    assert found.shape == (len(cascade.names), 2)


def test_a_film_without_spacing_is_refined_at_the_scale_its_anatomy_gives(refiner, trained_tiny,
                                                                         refined_film_shapes):
    """A film at three times the resolution of the refiner's training films, given without a
    spacing: the first stage's landmarks say how large the anatomy is, and the refiner gets the
    film resampled near its training scale (not the film as it came)."""
    rng = np.random.default_rng(13)
    image = synthetic_image(rng, synthetic_points(rng))
    big = np.asarray(Image.fromarray(image).resize((image.shape[1] * 3, image.shape[0] * 3),
                                                   Image.BILINEAR))
    cascade = open_detector(str(trained_tiny["checkpoint"]), refiner=refiner["checkpoint"])
    found = cascade.detect(big)
    assert found.estimated_spacing_mm is not None and found.spacing_mm is None  # no mm from a guess
    assert found.to_dict("x")["estimated_spacing_mm"] == found.estimated_spacing_mm
    assert 0.5 < refined_film_shapes[0][0] / image.shape[0] < 1.6  # near training scale, not 3x
    assert found.landmarks_px.shape == (len(cascade.names), 2)
    assert cascade.detect(image).estimated_spacing_mm is None  # a training-like film: as given


def test_a_film_whose_stated_spacing_contradicts_its_anatomy_is_flagged(refiner, trained_tiny):
    """A training-like film stated at 2.5 times its real spacing: the record says what the
    anatomy implies and keeps the stated spacing for positions in mm; the true spacing passes."""
    rng = np.random.default_rng(14)
    image = synthetic_image(rng, synthetic_points(rng))
    cascade = open_detector(str(trained_tiny["checkpoint"]), refiner=refiner["checkpoint"])
    right, wrong = cascade.detect(image, 0.2), cascade.detect(image, 0.5)
    assert right.anatomy_spacing_mm is None and right.to_dict("x")["anatomy_spacing_mm"] is None
    assert 0.13 < wrong.anatomy_spacing_mm < 0.3  # near the 0.2 mm the film really has
    assert wrong.spacing_mm == (0.5, 0.5)  # the device's word still sets the mm
    assert wrong.to_dict("x")["anatomy_spacing_mm"] == wrong.anatomy_spacing_mm
    assert cascade.detect(image).anatomy_spacing_mm is None  # no spacing: nothing to contradict


@needs_real_data
def test_a_half_resolution_film_with_its_spacing_reads_as_the_full_one():
    """test1 films at half resolution (0.2 mm pixels): with their spacing, and without one (the
    spacing then comes from the anatomy), the shipped cascade lands within 0.2 mm of its
    full-resolution points; told they are 0.1 mm films it is lost by more than 0.5 mm on average
    (the refiner's patches then show the anatomy at half scale)."""
    from edgeld.data import load_grayscale, open_dataset

    dataset = open_dataset(REAL_DATA)
    cascade = open_detector("isbi2015-student", refiner="isbi2015-refiner")
    gaps_with, gaps_estimated, estimates, errors_with, errors_wrong = [], [], [], [], []
    for sample in dataset.split("test1")[:3]:
        film = load_grayscale(sample.path)
        truth = sample.reference("senior")
        full = cascade.detect(film, 0.1)
        assert full.estimated_spacing_mm is None
        half = np.asarray(Image.fromarray(film).resize((film.shape[1] // 2, film.shape[0] // 2),
                                                       Image.BILINEAR, reducing_gap=3.0))
        with_spacing = from_resampled(cascade.detect(half, 0.2).landmarks_px, (0.5, 0.5))
        without = cascade.detect(half)
        estimates.append(without.estimated_spacing_mm)
        estimated = from_resampled(without.landmarks_px, (0.5, 0.5))
        told_full = cascade.detect(half, 0.1)
        assert 0.17 < told_full.anatomy_spacing_mm < 0.23  # and the record says so
        assert full.anatomy_spacing_mm is None
        wrong = from_resampled(told_full.landmarks_px, (0.5, 0.5))
        gaps_with.append(np.hypot(*(with_spacing - full.landmarks_px).T).mean() * 0.1)
        gaps_estimated.append(np.hypot(*(estimated - full.landmarks_px).T).mean() * 0.1)
        errors_with.append(np.hypot(*(with_spacing - truth).T).mean() * 0.1)
        errors_wrong.append(np.hypot(*(wrong - truth).T).mean() * 0.1)
    assert max(gaps_with) < 0.2 and max(gaps_estimated) < 0.2
    assert all(0.17 < e < 0.23 for e in estimates), estimates  # skulls differ in size by ~6%
    assert np.mean(errors_wrong) > np.mean(errors_with) + 0.5


def test_evaluate_detects_each_film_at_its_datasets_spacing(refiner, trained_tiny, tmp_path,
                                                            refined_film_shapes):
    """`edgeld evaluate` on a set of another device's spacing (dataset.json: 0.1 mm, films at
    twice the resolution of the refiner's 0.2 mm training films): each film reaches the refiner
    resampled to the training scale, as `detect(film, spacing)` does."""
    from edgeld.data import open_dataset
    from edgeld.evaluate import evaluate

    fine, shapes = _finer_copy(trained_tiny["data"], tmp_path)
    cascade = open_detector(str(trained_tiny["checkpoint"]), refiner=refiner["checkpoint"])
    result = evaluate(cascade, open_dataset(fine), "test1", progress=False)
    assert len(result["per_image"]) == len(shapes)
    assert sorted(refined_film_shapes) == sorted(shapes.values())  # all at the training scale


def test_the_int8_gate_runs_each_film_at_its_datasets_spacing(refiner, trained_tiny, tmp_path,
                                                             refined_film_shapes):
    """An INT8 refiner's accuracy gate on a set of another spacing: the cascade it runs hands
    each film to the refiner at the training scale, as `edgeld evaluate` does."""
    from edgeld.export.gate import Gate
    from edgeld.export.onnx import export_onnx

    fine, shapes = _finer_copy(trained_tiny["data"], tmp_path)
    onnx = tmp_path / "refiner.onnx"
    export_onnx(refiner["checkpoint"], onnx)
    stage1 = open_detector(str(trained_tiny["checkpoint"]))
    gate = Gate.load(resolve_model(str(onnx)).io, fine, "test1", {}, stage1=stage1)
    assert gate.evaluate(onnx)["mre_mm"] > 0
    assert sorted(refined_film_shapes) == sorted(shapes.values())


def _finer_copy(data, tmp_path) -> tuple:
    """A copy of the synthetic set whose test1 films are at twice the resolution, its
    dataset.json saying 0.1 mm (the refiner trained on 0.2 mm films); and each film's original
    (h, w) by id."""
    import json
    import shutil

    from edgeld.data import open_dataset

    fine = tmp_path / "fine"
    shutil.copytree(data, fine)
    meta = json.loads((fine / "dataset.json").read_text())
    (fine / "dataset.json").write_text(json.dumps({**meta, "pixel_spacing_mm": [0.1, 0.1]}))
    shapes = {}
    for sample in open_dataset(fine).split("test1"):
        image = Image.open(sample.path)
        shapes[sample.image_id] = image.size[::-1]
        image.resize((image.width * 2, image.height * 2), Image.BILINEAR).save(sample.path)
    return fine, shapes


def test_predict_says_when_the_anatomy_set_the_scale(refiner, trained_tiny, tmp_path):
    """`edgeld predict` on a film of another scale without a spacing: the record carries the
    estimate, positions stay in pixels, and one note line says what was done and what to give."""
    import json
    import subprocess
    import sys

    rng = np.random.default_rng(13)
    image = synthetic_image(rng, synthetic_points(rng))
    Image.fromarray(image).resize((image.shape[1] * 3, image.shape[0] * 3),
                                  Image.BILINEAR).save(tmp_path / "big.png")
    Image.fromarray(image).save(tmp_path / "plain.png")
    done = subprocess.run([sys.executable, "-m", "edgeld", "predict", str(trained_tiny["checkpoint"]),
                           "--refiner", str(refiner["checkpoint"]), str(tmp_path / "big.png"),
                           str(tmp_path / "plain.png"), "--json", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    big, plain = json.loads((tmp_path / "out.json").read_text())
    assert big["estimated_spacing_mm"] > 0 and big["units"] == "px"
    assert plain["estimated_spacing_mm"] is None
    notes = [line for line in done.stderr.splitlines() if "its anatomy measures" in line]
    assert len(notes) == 1 and "big.png" in notes[0] and "--spacing" in notes[0]
