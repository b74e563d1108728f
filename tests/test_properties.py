"""Property-based tests (hypothesis) of the numeric core: letterbox, heatmap codec, metrics and
readers.

Each property states its tolerance. Example counts are modest and deadlines off, so the whole file
runs in a few seconds on 2 cores; failing examples are shrunk and replayed by hypothesis.
"""
from __future__ import annotations

import csv
import itertools
import json
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from edgeld.core.codec import SoftmaxHeatmapCodec
from edgeld.core.letterbox import Letterbox, to_unit_float
from edgeld.data import load_grayscale, open_dataset
from edgeld.metrics import radial_errors_mm, sdr_percent, summarize

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------------
# letterbox (edgeld/core/letterbox.py)

sizes = st.integers(min_value=1, max_value=6000)          # source: 1 px to a 6000 px detector
model_sizes = st.integers(min_value=4, max_value=640)     # model input side


@st.composite
def letterbox_and_points(draw) -> tuple[Letterbox, np.ndarray]:
    """A letterbox for a random source size and aspect ratio, and points inside that source image
    (pixel centres at integers, so the image spans [-0.5, size - 0.5] on each axis)."""
    box = Letterbox.fit((draw(sizes), draw(sizes)), (draw(model_sizes), draw(model_sizes)))
    n = draw(st.integers(min_value=1, max_value=20))
    unit = draw(hnp.arrays(np.float64, (n, 2), elements=st.floats(0.0, 1.0)))
    points = unit * np.array([box.src_w, box.src_h]) - 0.5
    return box, points


@FAST
@given(letterbox_and_points())
def test_letterbox_inverse_undoes_forward(case):
    """Forward then inverse returns each point to within 1e-6 source pixels (float64 rounding only),
    whatever the aspect ratio and scale (down to 1/1500)."""
    box, points = case
    back = box.inverse_points(box.forward_points(points))
    assert np.max(np.abs(back - points)) <= 1e-6


@FAST
@given(letterbox_and_points())
def test_points_inside_the_image_land_inside_the_model_input(case):
    """A point inside the source image maps inside the resized (unpadded) region of the model input,
    hence inside the model input, to within 1e-9 input pixels."""
    box, points = case
    fwd = box.forward_points(points)
    lo = box.pad_xy - 0.5
    hi = box.pad_xy + np.array([box.resized_w, box.resized_h]) - 0.5
    assert np.all(fwd >= lo - 1e-9) and np.all(fwd <= hi + 1e-9)
    assert np.all(fwd >= -0.5 - 1e-9)
    assert np.all(fwd <= np.array([box.dst_w, box.dst_h]) - 0.5 + 1e-9)


@FAST
@given(sizes, sizes, model_sizes, model_sizes)
def test_letterbox_fits_centres_and_fills_one_axis(src_h, src_w, dst_h, dst_w):
    """The resized image fits, is centred (padding differs by at most 1 px per side), fills the
    limiting axis, and keeps the aspect ratio up to rounding to whole pixels."""
    box = Letterbox.fit((src_h, src_w), (dst_h, dst_w))
    assert 1 <= box.resized_h <= dst_h and 1 <= box.resized_w <= dst_w
    assert box.pad_top >= 0 and box.pad_left >= 0
    assert 0 <= (dst_h - box.resized_h - box.pad_top) - box.pad_top <= 1
    assert 0 <= (dst_w - box.resized_w - box.pad_left) - box.pad_left <= 1
    assert box.resized_h == dst_h or box.resized_w == dst_w
    scale = min(dst_h / src_h, dst_w / src_w)
    assert abs(box.resized_h - src_h * scale) <= 0.5 + 1e-9 or box.resized_h == 1
    assert abs(box.resized_w - src_w * scale) <= 0.5 + 1e-9 or box.resized_w == 1


@SLOW
@given(st.integers(1, 300), st.integers(1, 300), st.integers(4, 96), st.integers(4, 96),
       st.sampled_from([np.uint8, np.uint16, np.float32]), st.data())
def test_letterbox_image_stays_in_unit_range_with_zero_padding(src_h, src_w, dst_h, dst_w, dtype,
                                                               data):
    """apply() gives float32 (dst_h, dst_w) values in [0, 1] with zero padding; a constant image
    stays constant (within 1e-5) inside the resized region."""
    box = Letterbox.fit((src_h, src_w), (dst_h, dst_w))
    if dtype == np.float32:
        image = data.draw(hnp.arrays(np.float32, (src_h, src_w),
                                     elements=st.floats(0.0, 1.0, width=32)))
    else:
        image = data.draw(hnp.arrays(dtype, (src_h, src_w)))
    out = box.apply(image)
    assert out.shape == (dst_h, dst_w) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    inside = np.zeros(out.shape, bool)
    top, left = box.pad_top, box.pad_left
    inside[top:top + box.resized_h, left:left + box.resized_w] = True
    assert np.all(out[~inside] == 0.0)
    constant = np.full((src_h, src_w), image.flat[0], dtype=dtype)
    expected = float(to_unit_float(constant).flat[0])
    assert np.allclose(box.apply(constant)[inside], expected, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# heatmap codec (edgeld/core/codec.py)

@st.composite
def codecs(draw) -> SoftmaxHeatmapCodec:
    stride = draw(st.sampled_from([1, 2, 4, 8]))
    h, w = draw(st.integers(3, 48)), draw(st.integers(3, 48))
    sigma = draw(st.floats(0.6, 3.0))
    return SoftmaxHeatmapCodec((h * stride, w * stride), stride, sigma)


def _logits_of(targets: np.ndarray) -> np.ndarray:
    """Log of float32 targets; cells that underflowed to 0 get the smallest positive float32."""
    return np.log(np.maximum(targets, np.finfo(np.float32).tiny))[None]


def _draw_points(codec, data, margin: float) -> np.ndarray:
    """1-5 input-pixel points whose cells lie at least `margin` cells inside the heatmap."""
    h, w = codec.heatmap_hw
    n = data.draw(st.integers(1, 5))
    cells = np.stack([data.draw(hnp.arrays(np.float64, n, elements=st.floats(margin, w - 1 - margin))),
                      data.draw(hnp.arrays(np.float64, n, elements=st.floats(margin, h - 1 - margin)))], -1)
    return codec.to_pixels(cells)


@FAST
@given(codecs(), st.data())
def test_encode_then_decode_recovers_an_interior_point_to_a_hundredth_of_a_cell(codec, data):
    """A landmark at any sub-cell position whose nearest cell is not on the map's border (by a
    margin of 0.01 cell, so that float32 targets cannot tie with a border cell) decodes to within
    0.01 cell (0.01 * stride input pixels): the log of a Gaussian is a parabola, so the vertex
    refinement is exact up to float32 rounding of the targets."""
    points = _draw_points(codec, data, margin=0.51)
    decoded, confidence = codec.decode(_logits_of(codec.encode(points)))
    err_cells = np.abs(decoded[0] - points) / codec.stride
    assert err_cells.max() < 0.01
    assert np.all(confidence > 0.0) and np.all(confidence <= 1.0)


@FAST
@given(codecs(), st.data())
def test_encode_then_decode_anywhere_on_the_map_is_within_half_a_cell(codec, data):
    """On the border cells there is no neighbour to refine with: the error is at most half a
    cell."""
    points = _draw_points(codec, data, margin=0.0)
    decoded, _ = codec.decode(_logits_of(codec.encode(points)))
    assert (np.abs(decoded[0] - points) / codec.stride).max() <= 0.5 + 1e-6


finite = st.floats(allow_nan=False, allow_infinity=False)
extremes = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 1e30, -1e30,
                            float(np.finfo(np.float32).max), float(np.finfo(np.float32).min),
                            1e308, -1e308, float(np.finfo(np.float64).max),
                            float(np.finfo(np.float64).min)])
huge = st.sampled_from([0.0, 1e308, -1e308, float(np.finfo(np.float64).max),
                        float(np.finfo(np.float64).min)])


@st.composite
def logit_maps(draw) -> np.ndarray:
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 8)),
             draw(st.integers(1, 8)))
    kind = draw(st.sampled_from(["any", "extreme", "huge", "constant", "float32"]))
    if kind == "constant":
        return np.full(shape, draw(st.one_of(finite, extremes)))
    if kind == "extreme":
        return draw(hnp.arrays(np.float64, shape, elements=extremes))
    if kind == "huge":  # differences of these overflow float64
        return draw(hnp.arrays(np.float64, shape, elements=huge))
    if kind == "float32":
        return draw(hnp.arrays(np.float32, shape,
                               elements=st.floats(allow_nan=False, allow_infinity=False, width=32)))
    return draw(hnp.arrays(np.float64, shape, elements=st.one_of(finite, extremes)))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # exp/log of +-1e308
@settings(max_examples=300, deadline=None)
@given(logit_maps(), st.sampled_from([1, 4]))
# found by this test with more examples: the parabola's sums overflowed to inf and the offset to NaN
@example(np.array([[[[1e308, float(np.finfo(np.float64).max), -1e308]]]]), 1)
def test_decode_is_finite_and_inside_the_map_for_any_finite_logits(logits, stride):
    """Whatever finite logits come in (constant maps, +-1e308, float32 extremes, 1x1 maps), decode
    returns finite points between the centres of the first and last cells, and confidences in
    [0, 1]."""
    n, k, h, w = logits.shape
    codec = SoftmaxHeatmapCodec((h * stride, w * stride), stride, 1.5)
    points, confidence = codec.decode(logits)
    assert points.shape == (n, k, 2) and confidence.shape == (n, k)
    assert np.all(np.isfinite(points)) and np.all(np.isfinite(confidence))
    lo = codec.to_pixels(np.zeros(2))
    hi = codec.to_pixels(np.array([w - 1.0, h - 1.0]))
    assert np.all(points >= lo - 1e-9) and np.all(points <= hi + 1e-9)
    assert np.all(confidence >= 0.0) and np.all(confidence <= 1.0)


# --------------------------------------------------------------------------------------------------
# metrics (edgeld/metrics.py)

coords = st.floats(-1e5, 1e5, allow_nan=False)
spacings = st.floats(0.001, 10.0)


@st.composite
def predictions(draw) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    pred = draw(hnp.arrays(np.float64, (n, k, 2), elements=coords))
    ref = draw(hnp.arrays(np.float64, (n, k, 2), elements=coords))
    return pred, ref, (draw(spacings), draw(spacings))


@FAST
@given(predictions())
def test_radial_errors_and_mre_are_non_negative_symmetric_and_zero_on_the_reference(case):
    pred, ref, spacing = case
    errors = radial_errors_mm(pred, ref, spacing)
    assert errors.shape == pred.shape[:2]
    assert np.all(errors >= 0.0) and np.all(np.isfinite(errors))
    assert np.allclose(errors, radial_errors_mm(ref, pred, spacing))
    assert np.all(radial_errors_mm(ref, ref, spacing) == 0.0)
    table = summarize(errors, [f"l{i}" for i in range(errors.shape[1])])
    assert table["mre_mm"] >= 0.0 and table["mre_std_mm"] >= 0.0
    assert all(row["mre_mm"] >= 0.0 for row in table["per_landmark"])
    # MRE is the mean: no landmark's MRE exceeds the largest error
    assert table["mre_mm"] <= errors.max() * (1 + 1e-12)


@FAST
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=12),
                  elements=st.floats(0.0, 50.0)),
       st.lists(st.floats(0.0, 60.0), min_size=2, max_size=8))
def test_sdr_is_a_percentage_and_monotone_in_the_radius(errors, radii):
    """SDR@r never decreases as r grows; 0 <= SDR <= 100. (Radii are compared one at a time: the
    result's keys are rounded to 0.1 mm, so radii closer than that share a key.)"""
    radii = sorted(radii)
    values = [next(iter(sdr_percent(errors, [r]).values())) for r in radii]
    assert all(0.0 <= v <= 100.0 for v in values)
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert sdr_percent(errors, [errors.max()])[f"{errors.max():.1f}"] == 100.0


# --------------------------------------------------------------------------------------------------
# readers (edgeld/data/datasets.py, edgeld/data/images.py)

# landmark names as a dataset author might write them: letters (any script), digits, and inner
# spaces, hyphens, commas and quotes (the CSV writer quotes what needs it)
name_chars = st.characters(categories=("L", "Nd"), include_characters="_-., '\"")
landmark_name = st.text(name_chars, min_size=1, max_size=12).map(str.strip).filter(bool)
image_stem = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=10)
point_value = st.floats(-100.0, 1e5, allow_nan=False)


@st.composite
def shared_layouts(draw) -> dict:
    names = draw(st.lists(landmark_name, min_size=1, max_size=25, unique=True))
    ids = [f"{s}.png" for s in draw(st.lists(image_stem, min_size=1, max_size=6, unique=True))]
    references = draw(st.lists(st.sampled_from(["senior", "junior", "consensus"]), min_size=1,
                               max_size=3, unique=True))
    tables = {}
    for ref in references:
        annotated = [i for i in ids if draw(st.booleans())] or ids[:1]
        tables[ref] = {i: draw(hnp.arrays(np.float64, (len(names), 2), elements=point_value))
                       for i in annotated}
    split_names = draw(st.lists(st.sampled_from(["train", "val", "test1", "test2", "demo"]),
                                min_size=1, max_size=3, unique=True))
    splits = {s: draw(st.lists(st.sampled_from(ids), max_size=len(ids), unique=True))
              for s in split_names}
    spacing = draw(st.none() | st.tuples(st.floats(0.01, 2.0), st.floats(0.01, 2.0)))
    title = draw(st.none() | st.text(min_size=1, max_size=20))
    return {"names": names, "ids": ids, "tables": tables, "splits": splits, "spacing": spacing,
            "title": title}


def _write_shared_layout(root: Path, layout: dict) -> None:
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for image_id in layout["ids"]:
        Image.fromarray(np.zeros((4, 5), np.uint8)).save(root / "images" / image_id)
    header = ["image"] + [f"{n}_{a}" for n in layout["names"] for a in ("x", "y")]
    for ref, table in layout["tables"].items():
        with (root / "annotations" / f"{ref}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for image_id, pts in table.items():
                writer.writerow([image_id] + [repr(float(v)) for v in pts.ravel()])
    for split, ids in layout["splits"].items():
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    meta = {"landmarks": layout["names"]}
    if layout["spacing"] is not None:
        meta["pixel_spacing_mm"] = list(layout["spacing"])
    if layout["title"] is not None:
        meta["name"] = layout["title"]
    (root / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")


@SLOW
@given(shared_layouts())
def test_shared_layout_reads_back_exactly_what_was_written(layout):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        _write_shared_layout(root, layout)
        ds = open_dataset(root)
    assert ds.landmark_names == tuple(layout["names"])
    assert ds.name == (layout["title"] if layout["title"] is not None else "ds")
    assert set(ds.splits) == set(layout["splits"])
    refs = layout["tables"]
    assert ds.default_reference == ("senior" if "senior" in refs else min(refs))
    for split, ids in layout["splits"].items():
        samples = ds.splits[split]
        assert [s.image_id for s in samples] == ids
        for sample in samples:
            assert sample.path == root / "images" / sample.image_id
            assert sample.spacing_mm == layout["spacing"]
            expected = {ref: t[sample.image_id] for ref, t in refs.items() if sample.image_id in t}
            assert set(sample.landmarks) == set(expected)
            for ref, pts in expected.items():
                assert sample.landmarks[ref].shape == (len(layout["names"]), 2)
                assert np.array_equal(sample.landmarks[ref], pts)  # exact: repr round-trips


image_hw = st.tuples(st.integers(1, 64), st.integers(1, 64))


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, as Pillow's convert('L') computes it (to within 1 grey level)."""
    rgb = rgb.astype(np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


@SLOW
@given(image_hw, st.sampled_from(["L", "I;16", "RGB", "RGBA", "P", "LA"]), st.data())
def test_load_grayscale_gives_the_image_shape_and_its_values(hw, mode, data):
    """8-bit, colour and palette PNGs load as uint8 (h, w) with their grey values (colour: luma,
    within 1 level); 16-bit PNGs load as uint16 with their exact values. Either way to_unit_float
    maps them onto [0, 1] on the same scale: an 8-bit image v and its 16-bit copy v * 257 agree."""
    h, w = hw
    if mode == "I;16":
        pixels = data.draw(hnp.arrays(np.uint16, (h, w)))
        img = Image.fromarray(pixels)
        expected = pixels
    elif mode == "L":
        expected = data.draw(hnp.arrays(np.uint8, (h, w)))
        img = Image.fromarray(expected, mode="L")
    elif mode in ("RGB", "RGBA"):
        pixels = data.draw(hnp.arrays(np.uint8, (h, w, len(mode))))
        img = Image.fromarray(pixels, mode=mode)
        expected = _luma(pixels)
    elif mode == "LA":
        pixels = data.draw(hnp.arrays(np.uint8, (h, w, 2)))
        img = Image.fromarray(pixels, mode="LA")
        expected = pixels[..., 0]
    else:  # palette: random indices into a random RGB palette
        palette = data.draw(hnp.arrays(np.uint8, (256, 3)))
        index = data.draw(hnp.arrays(np.uint8, (h, w)))
        img = Image.fromarray(index, mode="L").convert("P")  # a P image, then its own palette
        img.putdata(index.ravel().tolist())
        img.putpalette(palette.ravel().tolist())
        expected = _luma(palette[index])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.png"
        img.save(path)
        loaded = load_grayscale(path)
    assert loaded.shape == (h, w)
    if mode == "I;16":
        assert loaded.dtype == np.uint16 and np.array_equal(loaded, expected)
    else:
        assert loaded.dtype == np.uint8
        assert np.abs(loaded.astype(np.float64) - expected).max() <= 1.0
    unit = to_unit_float(loaded)
    assert unit.dtype == np.float32 and unit.min() >= 0.0 and unit.max() <= 1.0
    if mode == "L":
        wide = to_unit_float(loaded.astype(np.uint16) * np.uint16(257))
        assert np.allclose(unit, wide, atol=1e-6)


@pytest.mark.parametrize("bits", [8, 16])
def test_load_grayscale_keeps_full_scale_white_at_one(tmp_path, bits):
    """The ends of the range: black is 0.0 and full-scale white is 1.0 at either bit depth."""
    dtype = np.uint8 if bits == 8 else np.uint16
    pixels = np.array([[0, np.iinfo(dtype).max]], dtype=dtype)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    assert to_unit_float(load_grayscale(tmp_path / "x.png")).tolist() == [[0.0, 1.0]]
