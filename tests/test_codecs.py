import numpy as np
import pytest

from edgeld.core.codec import SoftmaxHeatmapCodec


@pytest.mark.parametrize("stride,sigma", [(4, 1.5), (2, 1.0), (4, 2.5)])
def test_encode_decode_round_trip_within_a_tenth_of_a_cell(stride, sigma):
    codec = SoftmaxHeatmapCodec((384, 320), stride, sigma)
    rng = np.random.default_rng(1)
    # keep points a few cells inside, where all neighbours of the peak exist
    pts = rng.uniform([8, 8], [312, 376], size=(19, 2))
    maps = codec.encode(pts)
    assert maps.shape == (19, 96 * 4 // stride, 80 * 4 // stride)
    assert np.allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-5)
    decoded, conf = codec.decode(np.log(maps[None] + 1e-30))
    err_cells = np.abs(decoded[0] - pts) / stride
    assert err_cells.max() < 0.1
    assert conf.shape == (1, 19) and np.all((conf > 0) & (conf <= 1))


def test_confidence_high_for_sharp_peak_and_low_for_flat_map():
    codec = SoftmaxHeatmapCodec((64, 64), 4, 1.0)
    sharp = np.log(codec.encode(np.array([[30.0, 30.0]]))[None] + 1e-30)
    flat = np.zeros((1, 1, 16, 16))
    assert codec.decode(sharp)[1][0, 0] > 0.99
    assert codec.decode(flat)[1][0, 0] < 0.05


def test_peak_on_the_border_decodes_without_error():
    codec = SoftmaxHeatmapCodec((64, 64), 4, 1.0)
    logits = np.full((1, 1, 16, 16), -10.0)
    logits[0, 0, 0, 15] = 5.0
    pts, _ = codec.decode(logits)
    assert np.allclose(pts[0, 0], codec.to_pixels(np.array([15.0, 0.0])))


def test_cell_pixel_conversion_inverts():
    codec = SoftmaxHeatmapCodec((64, 64), 4)
    p = np.array([[10.3, 55.1]])
    assert np.allclose(codec.to_pixels(codec.to_cells(p)), p)


@pytest.mark.parametrize("radius", [4, 6])
def test_local_softargmax_round_trip_within_a_fiftieth_of_a_cell(radius):
    # a window of radius 4 cuts a target Gaussian (sigma 1.5 cells) 2.7 sigma or more from its
    # centre: the truncation pulls the mean towards the peak cell by at most 0.013 cells (0.06 at
    # radius 3, 0.18 at radius 2); the radius is chosen on real maps by `edgeld decode fit`
    codec = SoftmaxHeatmapCodec((384, 320), 4, 1.5, softargmax_radius=radius)
    pts = np.random.default_rng(2).uniform([40, 40], [280, 344], size=(19, 2))
    decoded, conf = codec.decode(np.log(codec.encode(pts)[None] + 1e-30))
    assert np.abs(decoded[0] - pts).max() / 4 < 0.02
    # confidence does not depend on how the peak is refined
    assert np.allclose(conf, SoftmaxHeatmapCodec((384, 320), 4, 1.5).decode(
        np.log(codec.encode(pts)[None] + 1e-30))[1])


def test_local_softargmax_is_the_weighted_mean_of_its_window_only():
    codec = SoftmaxHeatmapCodec((64, 64), 4, 1.0, softargmax_radius=1)
    logits = np.full((1, 1, 16, 16), -50.0)
    logits[0, 0, 5, 5] = 2.0
    logits[0, 0, 5, 6] = 2.0 + np.log(0.5)   # half the peak's weight, one cell right
    logits[0, 0, 5, 12] = 1.9                 # a second mode outside the window: ignored
    cells = codec.to_cells(codec.decode(logits)[0][0, 0])
    assert np.allclose(cells, [5 + 0.5 / 1.5, 5.0])


def test_local_softargmax_window_is_clipped_at_the_border():
    codec = SoftmaxHeatmapCodec((64, 64), 4, 1.0, softargmax_radius=3)
    logits = np.full((1, 1, 16, 16), -50.0)
    logits[0, 0, 0, 15] = 5.0
    logits[0, 0, 0, 14] = 5.0
    cells = codec.to_cells(codec.decode(logits)[0][0, 0])
    assert np.allclose(cells, [14.5, 0.0])
