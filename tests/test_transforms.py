import numpy as np
import pytest

from edgeld.core.letterbox import Letterbox, normalize, preprocess, to_unit_float


@pytest.mark.parametrize("src,dst", [((2400, 1935), (384, 320)), ((100, 300), (64, 64)),
                                     ((64, 64), (128, 96)), ((513, 411), (384, 320))])
def test_points_round_trip(src, dst):
    box = Letterbox.fit(src, dst)
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, size=(50, 2)) * np.array([src[1], src[0]])
    assert np.allclose(box.inverse_points(box.forward_points(pts)), pts, atol=1e-9)
    assert box.resized_h <= dst[0] and box.resized_w <= dst[1]


def test_letterbox_keeps_aspect_and_centres_padding():
    box = Letterbox.fit((100, 300), (64, 64))
    assert (box.resized_h, box.resized_w) == (21, 64)
    assert box.pad_top == (64 - 21) // 2 and box.pad_left == 0


def test_bright_pixel_lands_where_forward_points_says():
    src = np.zeros((240, 200), dtype=np.float32)
    src[100:110, 60:70] = 1.0  # a 10x10 block centred at (64.5, 104.5)
    box = Letterbox.fit(src.shape, (120, 120))
    out = box.apply(src)
    ys, xs = np.nonzero(out > 0.25)
    weights = out[ys, xs]
    centroid = np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])
    assert np.allclose(centroid, box.forward_points([[64.5, 104.5]])[0], atol=0.3)


def test_apply_pads_with_zero_and_scales_dtypes():
    img8 = np.full((50, 100), 255, dtype=np.uint8)
    out = Letterbox.fit(img8.shape, (64, 64)).apply(img8)
    assert out.dtype == np.float32 and out.shape == (64, 64)
    assert out[0, 0] == 0.0 and np.isclose(out[32, 32], 1.0)
    img16 = np.full((50, 100), 65535, dtype=np.uint16)
    assert np.isclose(Letterbox.fit(img16.shape, (64, 64)).apply(img16)[32, 32], 1.0)
    assert np.isclose(to_unit_float(np.array([2.0], np.float32))[0], 1.0)


def test_preprocess_shape_and_normalization():
    x, box = preprocess(np.zeros((48, 32), np.uint8), 64, 64, 0.5, 0.25)
    assert x.shape == (1, 64, 64) and x.dtype == np.float32
    assert np.allclose(x, -2.0)
    assert np.allclose(normalize(np.ones((2, 2), np.float32), 0.5, 0.25), 2.0)
    with pytest.raises(ValueError):
        preprocess(np.zeros((4, 4, 3), np.uint8), 64, 64, 0.5, 0.25)


@pytest.mark.parametrize("shape", [(2400, 1935), (1001, 1003), (37, 29), (5, 3)])
@pytest.mark.parametrize("gap", [1.5, 3.0])
def test_16_bit_letterbox_is_pillows_float_resize(shape, gap):
    """16-bit films are box-reduced in integer sums (Pillow cannot reduce them), then resized as
    floats: the same pixels as Pillow's resize of the whole film converted to float, up, down,
    with short last blocks."""
    from PIL import Image

    image = np.random.default_rng(sum(shape)).integers(0, 65536, shape, dtype=np.uint16)
    for dst in [(384, 320), (64, 64)]:
        box = Letterbox.fit(shape, dst)
        pil = Image.fromarray(to_unit_float(image), mode="F")
        expected = np.asarray(pil.resize((box.resized_w, box.resized_h), Image.BILINEAR,
                                         reducing_gap=gap))
        got = box.apply(image, gap)[box.pad_top:box.pad_top + box.resized_h,
                                    box.pad_left:box.pad_left + box.resized_w]
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-7)
