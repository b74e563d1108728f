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
