import numpy as np
import pytest

from edgeld.metrics import mean_shape, place_mean_shape, radial_errors_mm, sdr_percent, summarize


def test_radial_errors_use_row_column_spacing():
    pred = np.array([[[3.0, 0.0], [0.0, 4.0]]])
    ref = np.zeros((1, 2, 2))
    # spacing (row=0.5, col=0.1): x offsets scale by 0.1, y offsets by 0.5
    assert np.allclose(radial_errors_mm(pred, ref, (0.5, 0.1)), [[0.3, 2.0]])
    per_image = radial_errors_mm(np.concatenate([pred, pred]), np.zeros((2, 2, 2)),
                                 np.array([[0.1, 0.1], [1.0, 1.0]]))
    assert np.allclose(per_image, [[0.3, 0.4], [3.0, 4.0]])


def test_sdr_counts_inclusive_radii():
    errs = np.array([1.0, 2.0, 2.6, 3.5, 5.0])
    assert sdr_percent(errs) == {"2.0": 40.0, "2.5": 40.0, "3.0": 60.0, "4.0": 80.0}


def test_summarize_fields_and_per_landmark():
    errs = np.array([[1.0, 3.0], [2.0, 5.0]])
    s = summarize(errs, ["a", "b"])
    assert s["n_images"] == 2 and s["n_landmarks"] == 2
    assert s["mre_mm"] == pytest.approx(2.75)
    assert s["per_landmark"][1]["mre_mm"] == pytest.approx(4.0)
    assert s["per_landmark"][0]["sdr_percent"]["2.0"] == 100.0
    with pytest.raises(ValueError):
        summarize(errs, ["a"])


def test_mean_shape_scales_with_image_size():
    pts = np.array([[[10.0, 20.0]], [[30.0, 60.0]]])
    hw = np.array([[100, 50], [300, 150]])
    shape = mean_shape(pts, hw)
    assert np.allclose(shape, [[0.2, 0.2]])
    assert np.allclose(place_mean_shape(shape, np.array([[1000, 500]])), [[[100.0, 200.0]]])
