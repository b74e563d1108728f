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
from edgeld.runtime.spacing import from_resampled, resample, resampling_scale, to_resampled


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


def test_refiner_records_its_training_films_spacing(refiner):
    assert resolve_model(refiner["checkpoint"]).io.film_spacing_mm == (0.2, 0.2)


def test_a_film_at_the_training_spacing_takes_the_usual_path(refiner, trained_tiny):
    rng = np.random.default_rng(11)
    image = synthetic_image(rng, synthetic_points(rng))
    cascade = open_detector(str(trained_tiny["checkpoint"]), refiner=refiner["checkpoint"])
    assert np.array_equal(cascade.detect(image, 0.2).landmarks_px, cascade.detect(image).landmarks_px)


def test_a_finer_film_with_its_spacing_is_refined_at_the_training_scale(refiner, trained_tiny,
                                                                       monkeypatch):
    """A film at twice the resolution (0.1 mm pixels) reaches the refiner resampled to its
    training films' 0.2 mm: the refiner is given the original-size film's pixels."""
    from edgeld.runtime.detector import LandmarkDetector

    rng = np.random.default_rng(12)
    image = synthetic_image(rng, synthetic_points(rng))
    fine = np.asarray(Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2),
                                                    Image.BILINEAR))
    cascade = open_detector(str(trained_tiny["checkpoint"]), refiner=refiner["checkpoint"])
    seen = []
    original = LandmarkDetector.refine

    def spy(self, film, points, image_factor=1):
        seen.append(film.shape)
        return original(self, film, points, image_factor)

    monkeypatch.setattr(LandmarkDetector, "refine", spy)
    found = cascade.detect(fine, 0.1).landmarks_px
    assert seen == [image.shape]
    as_given = cascade.detect(fine).landmarks_px
    assert seen[-1] == fine.shape  # no spacing: taken as it comes, as before
    assert found.shape == as_given.shape == (len(cascade.names), 2)


@needs_real_data
def test_a_half_resolution_film_with_its_spacing_reads_as_the_full_one():
    """test1 films at half resolution (0.2 mm pixels): with their spacing the shipped cascade
    lands within 0.2 mm of its full-resolution points; taken as 0.1 mm films it is lost by more
    than 0.5 mm on average (the refiner's patches then show the anatomy at half scale)."""
    from edgeld.data import load_grayscale, open_dataset

    dataset = open_dataset(REAL_DATA)
    cascade = open_detector("isbi2015-student", refiner="isbi2015-refiner")
    gaps_with, errors_with, errors_without = [], [], []
    for sample in dataset.split("test1")[:3]:
        film = load_grayscale(sample.path)
        truth = sample.reference("senior")
        full = cascade.detect(film, 0.1).landmarks_px
        half = np.asarray(Image.fromarray(film).resize((film.shape[1] // 2, film.shape[0] // 2),
                                                       Image.BILINEAR, reducing_gap=3.0))
        with_spacing = from_resampled(cascade.detect(half, 0.2).landmarks_px, (0.5, 0.5))
        without = from_resampled(cascade.detect(half).landmarks_px, (0.5, 0.5))
        gaps_with.append(np.hypot(*(with_spacing - full).T).mean() * 0.1)
        errors_with.append(np.hypot(*(with_spacing - truth).T).mean() * 0.1)
        errors_without.append(np.hypot(*(without - truth).T).mean() * 0.1)
    assert max(gaps_with) < 0.2
    assert np.mean(errors_without) > np.mean(errors_with) + 0.5
