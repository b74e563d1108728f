"""Reduced-size JPEG decoding (issue 12, item 2): its pixel geometry, the rule for how far a
detector's chain may reduce a film, the refiner's patch grid on a reduced film, and detect_file
against detect on the full decode of real films."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import REAL_DATA, needs_real_data
from edgeld.core.contract import HeatmapSpec, InputSpec, ModelIO
from edgeld.data import load_grayscale
from edgeld.data.images import load_reduced
from edgeld.runtime import LandmarkDetector
from edgeld.runtime.patches import PatchSpec, patches_around, reduce_image
from edgeld.runtime.reduced import max_reduction, reduced_to_original

NAMES = ("a", "b", "c")


def _dots_jpeg(path, hw=(1203, 967), sigma=4.0, seed=0):
    """A JPEG with bright Gaussian dots at sub-pixel positions; returns the dots (x, y)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    dots = np.stack([rng.uniform(40, w - 40, 12), rng.uniform(40, h - 40, 12)], axis=1)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), 30.0)
    for x, y in dots:
        img += 200 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=95)
    return dots


def _centroids(image, approx_xy, radius):
    """Background-subtracted intensity centroid of each dot in a window around its guess."""
    out = []
    for x, y in approx_xy:
        x0, y0 = int(round(x)) - radius, int(round(y)) - radius
        win = image[y0:y0 + 2 * radius + 1, x0:x0 + 2 * radius + 1].astype(np.float64)
        win = np.clip(win - np.median(image), 0, None)
        yy, xx = np.mgrid[0:win.shape[0], 0:win.shape[1]]
        out.append([x0 + (win * xx).sum() / win.sum(), y0 + (win * yy).sum() / win.sum()])
    return np.array(out)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_reduced_pixels_map_back_to_the_files_pixels(tmp_path, factor):
    """Dots located in the reduced decode land on their positions in the file (src = (i + 0.5)
    * f - 0.5, f the integer factor), not where a size-ratio or corner mapping puts them."""
    dots = _dots_jpeg(tmp_path / "dots.jpg")
    film = load_reduced(tmp_path / "dots.jpg", lambda hw: factor)
    assert film.factor == factor and film.original_hw == (1203, 967)
    assert film.image.shape == (-(-1203 // factor), -(-967 // factor))  # libjpeg rounds up
    guess = (dots + 0.5) / factor - 0.5
    found = _centroids(film.image, guess, radius=max(3, int(np.ceil(16 / factor))))
    error = np.abs(reduced_to_original(found, factor) - dots).max()
    assert error <= 0.3, f"1/{factor}: located dots are {error:.2f} px off"
    # the alternatives the measurement rules out are off by more than the tolerance
    corner = np.abs(found * factor - dots).max()
    ratio = np.abs((found + 0.5) * np.array([967, 1203]) / film.image.shape[::-1] - 0.5 - dots).max()
    assert corner > 0.3 and (factor == 8 or ratio > 0.3 or film.image.shape[1] * factor == 967)


def test_other_formats_and_no_rule_read_in_full(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 255, (96, 80), dtype=np.uint8)
    deep = (rng.integers(0, 65535, (96, 80))).astype(np.uint16)
    for name, array in [("a.png", gray), ("a.bmp", gray), ("a.tif", gray), ("deep.png", deep),
                        ("deep.tif", deep)]:
        Image.fromarray(array).save(tmp_path / name)
        film = load_reduced(tmp_path / name, lambda hw: 8)
        assert film.factor == 1 and film.original_hw == (96, 80)
        assert film.image.dtype == array.dtype and np.array_equal(film.image, array)
    Image.fromarray(gray).save(tmp_path / "a.jpg")
    full = load_reduced(tmp_path / "a.jpg", None)
    assert full.factor == 1 and np.array_equal(full.image, load_grayscale(tmp_path / "a.jpg"))
    assert load_reduced(tmp_path / "a.jpg", lambda hw: 1).factor == 1
    assert load_reduced(tmp_path / "a.jpg", lambda hw: 3).factor == 2  # powers of two only


def test_a_colour_coded_grey_jpeg_is_decoded_to_luma_alone_in_full(tmp_path):
    """ISBI's films are grey pictures stored as colour (YCbCr) JPEGs. A full-size read asks
    libjpeg for the luma plane alone (no chroma upsampling or colour conversion: half the decode
    time), which for a grey picture is bit for bit what decoding to RGB and converting gives."""
    from edgeld.data.images import draft_reduced

    _dots_jpeg(tmp_path / "grey.jpg", hw=(301, 257))
    with Image.open(tmp_path / "grey.jpg") as img:
        Image.merge("RGB", [img] * 3).save(tmp_path / "colour.jpg", quality=90)
    with Image.open(tmp_path / "colour.jpg") as img:
        assert img.mode == "RGB"
        img.load()
        via_rgb = np.asarray(img.convert("L"))
    with Image.open(tmp_path / "colour.jpg") as img:
        assert draft_reduced(img, 1) == 1 and img.mode == "L"  # the decoder is set to luma
    for film in (load_grayscale(tmp_path / "colour.jpg"),
                 load_reduced(tmp_path / "colour.jpg", lambda hw: 1).image):
        assert film.dtype == np.uint8 and np.array_equal(film, via_rgb)


class _Null:
    def activate(self):
        pass

    def deactivate(self):
        pass

    def infer(self, batch):
        raise AssertionError("not run here")


def _detector(refiner_factors=(), quality=None, hw=(384, 320)):
    refiner = None
    for factor in reversed(refiner_factors):  # coarse to fine: the first given runs first
        io = ModelIO(InputSpec(64, 64), HeatmapSpec(), NAMES, patch_size=64, patch_factor=factor)
        refiner = LandmarkDetector(runner=_Null(), io=io, refiner=refiner)
    io = ModelIO(InputSpec(*hw), HeatmapSpec(), NAMES, quality=quality)
    return LandmarkDetector(runner=_Null(), io=io, refiner=refiner)


def test_how_far_a_chain_may_reduce_a_film():
    film = (2400, 1935)
    assert max_reduction(_detector(), film) == 4  # 600x484 for a 384x310 letterbox: 1.56 >= 1.5
    assert max_reduction(_detector((2,)), film) == 2  # the refiner's 0.2 mm grid
    assert max_reduction(_detector((4, 2)), film) == 2
    assert max_reduction(_detector((3,)), film) == 1  # 2 does not divide a 1/3 grid
    assert max_reduction(_detector(), (4800, 3870)) == 8
    assert max_reduction(_detector(), (400, 320)) == 1  # tiny: nothing to spare
    assert max_reduction(_detector(), (1200, 968)) == 2  # 3.1x room: 2, not 4
    assert max_reduction(_detector(), (900, 730)) == 1  # 2.3x room: /2 would leave 1.2x
    quality = {"min_side_px": 500, "max_aspect": 3.0, "min_correlation": 0.0,
               "min_confidence": 0.0, "fitted_on": "test"}
    assert max_reduction(_detector(quality=quality), film) == 2  # ceil(1935 / 4) < 500
    with pytest.raises(ValueError, match="refinement stage"):
        max_reduction(_detector((2,)).refiner, film)


def test_refiner_patches_from_a_reduced_film_are_the_full_films():
    """A refiner at patch_factor 2 cuts the same patches from the film reduced by 2 (patch
    factor 1 on it, points in its pixels) as from the full film."""
    rng = np.random.default_rng(2)
    full = rng.integers(0, 255, (300, 242), dtype=np.uint8)
    points = rng.uniform(20, 220, (5, 2))
    reduced = np.asarray(reduce_image(full, 2))
    a, ca = patches_around(full, points, PatchSpec(32, 2), 0.5, 0.25)
    b, cb = patches_around(reduced, PatchSpec(factor=2).source_to_reduced(points),
                           PatchSpec(32, 1), 0.5, 0.25)
    assert np.allclose(ca, cb) and np.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="cannot cut patches"):
        _detector((2,)).refiner.refine(reduced, points, image_factor=4)


@needs_real_data
@pytest.mark.parametrize("refiner", [None, "isbi2015-refiner"], ids=["student", "cascade"])
def test_detect_file_matches_detect_on_the_full_decode(refiner):
    """On 5 test1 films, reduced (cascade 1/2, student 1/4) vs full decode, measured: mean
    signed difference per axis <= 0.10 px, median distance 0.37 (cascade) and 0.54 px (student)
    (single landmarks can jump several px where the heatmap has two peaks; on all 150 test1
    films the MRE moved by -0.0003 and +0.0028 mm). A wrong centre mapping shifts the mean by
    0.5 (1/2) or 1.5 px (1/4)."""
    from edgeld.data import open_dataset
    from edgeld.detect_file import detect_file
    from edgeld.load import open_detector

    detector = open_detector("isbi2015-student", refiner=refiner)
    samples = open_dataset(REAL_DATA).split("test1")[::30]
    diffs = []
    for s in samples:
        reduced = detect_file(detector, s.path, spacing_mm=0.1)
        full = detector.detect(load_grayscale(s.path), 0.1)
        assert reduced.spacing_mm == full.spacing_mm == (0.1, 0.1)
        diffs.append(reduced.landmarks_px - full.landmarks_px)
    d = np.concatenate(diffs)
    assert np.abs(d.mean(axis=0)).max() <= 0.25, d.mean(axis=0)
    assert np.median(np.linalg.norm(d, axis=1)) <= 0.75
