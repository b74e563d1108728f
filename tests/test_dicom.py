"""DICOM input: the grayscale pipeline, spacing tags, and what `predict` reports about spacing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pydicom = pytest.importorskip("pydicom")

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from edgeld.cli import cli  # noqa: E402
from edgeld.core.errors import UserError  # noqa: E402
from edgeld.data import load_grayscale  # noqa: E402
from edgeld.data.dicom import is_dicom, read_dicom  # noqa: E402

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def make_dicom(path: Path, pixels: np.ndarray, *, bits_stored: int | None = None,
               photometric: str = "MONOCHROME2", transfer_syntax=ExplicitVRLittleEndian,
               pixel_data: bytes | None = None, **tags) -> Path:
    """Write a single-image DICOM file with pydicom; `tags` are set by keyword on the dataset."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = DX_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = pixel_data if pixel_data is not None else pixels.tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
    return path


def ramp12(h: int = 8, w: int = 16) -> np.ndarray:
    """12-bit values 0..4095 left to right, stored in 16 bits."""
    return np.tile(np.linspace(0, 4095, w).round().astype(np.uint16), (h, 1))


def cli_run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def stderr_lines(result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.strip()]


# --- pixels -------------------------------------------------------------------------------------

def unit(pixels: np.ndarray) -> np.ndarray:
    """Display pixels of an integer grayscale film (uint16, 65535 = white) in [0, 1]."""
    assert pixels.dtype == np.uint16
    return pixels / 65535.0


QUANTUM = 0.5 / 65535 + 1e-9  # display values are rounded to 16 bits


def test_monochrome2_16bit_respects_bits_stored(tmp_path):
    stored = ramp12()
    stored[0, 1] = 0xF000 | 5  # garbage above bit 11 must be ignored: this pixel is 5, nearly black
    path = make_dicom(tmp_path / "m2.dcm", stored, bits_stored=12)
    img = unit(load_grayscale(path))
    assert img.shape == stored.shape
    assert img.min() == 0.0 and img.max() == 1.0  # no window: min-max of the values present
    assert img[0, 1] == pytest.approx(5 / 4095, abs=QUANTUM)
    assert np.all(np.diff(img[1]) > 0)  # MONOCHROME2: higher value = brighter


def test_monochrome1_is_inverted(tmp_path):
    stored = ramp12()
    m2 = read_dicom(make_dicom(tmp_path / "m2.dcm", stored, bits_stored=12)).pixels
    m1 = read_dicom(make_dicom(tmp_path / "m1.dcm", stored, bits_stored=12,
                               photometric="MONOCHROME1")).pixels
    assert m2[0, 0] < m2[0, -1] and m1[0, 0] > m1[0, -1]  # bright/dark order flips
    np.testing.assert_allclose(unit(m1), 1.0 - unit(m2), atol=2 * QUANTUM)


def test_rescale_then_first_window(tmp_path):
    stored = np.array([[0, 100, 200, 300]], dtype=np.uint16)
    # modality values 2 * stored - 100 = [-100, 100, 300, 500]; window 200 +- 200 (LINEAR_EXACT)
    path = make_dicom(tmp_path / "w.dcm", stored, RescaleSlope=2, RescaleIntercept=-100,
                      WindowCenter=[200, 1000], WindowWidth=[400, 10], VOILUTFunction="LINEAR_EXACT")
    np.testing.assert_allclose(unit(read_dicom(path).pixels[0]), [0.0, 0.25, 0.75, 1.0], atol=QUANTUM)


def test_signed_12_bit_values_keep_their_sign(tmp_path):
    stored = np.array([[-2048, -1, 0, 2047]], dtype=np.int16)
    raw = stored.view(np.uint16) & 0x0FFF  # as a 12-bit signed value is stored in 16 bits
    path = make_dicom(tmp_path / "s.dcm", stored, bits_stored=12, pixel_data=raw.tobytes())
    np.testing.assert_allclose(unit(read_dicom(path).pixels[0]), (stored[0] + 2048) / 4095, atol=QUANTUM)


def test_linear_window_matches_pydicom(tmp_path):
    from pydicom.pixels import apply_windowing

    stored = ramp12()
    path = make_dicom(tmp_path / "lw.dcm", stored, bits_stored=12, WindowCenter=1500,
                      WindowWidth=1000)
    ours = unit(read_dicom(path).pixels)
    theirs = apply_windowing(stored.astype(np.float64), pydicom.dcmread(path)) / 4095.0
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert ours[0, 0] == 0.0 and ours[0, -1] == 1.0  # outside the window: clipped


def test_voi_lut_sequence_is_used_over_window(tmp_path):
    stored = ramp12()
    path = make_dicom(tmp_path / "lut.dcm", stored, bits_stored=12, WindowCenter=10, WindowWidth=2)
    ds = pydicom.dcmread(path)
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 16])  # LUTDescriptor: entries, first input, bits
    item.add_new(0x00283006, "US", (np.arange(4096)[::-1] * 16).tolist())  # LUTData: inverting
    ds.VOILUTSequence = [item]
    ds.save_as(path)
    img = unit(read_dicom(path).pixels)
    np.testing.assert_allclose(img, 1.0 - stored / 4095.0, atol=QUANTUM)


@pytest.mark.parametrize("tags", [
    {},  # min-max of the values present
    {"RescaleSlope": -3, "RescaleIntercept": 7, "WindowCenter": -4000, "WindowWidth": 6000},
    {"WindowCenter": 1500, "WindowWidth": 1000, "VOILUTFunction": "SIGMOID"},
    {"WindowCenter": 1500, "WindowWidth": 1000, "photometric": "MONOCHROME1"},
])
def test_lookup_table_equals_per_pixel_arithmetic(tmp_path, tags):
    """Integer films go through one table over their levels; each pixel gets what the float64
    arithmetic on every pixel gives (to 16-bit rounding), gaps between the levels included."""
    from edgeld.data.dicom import _modality, _unit_gray

    stored = np.random.default_rng(3).choice([3, 40, 41, 900, 2000, 4095], size=(9, 11)).astype(np.uint16)
    tags = dict(tags)
    path = make_dicom(tmp_path / "t.dcm", stored, bits_stored=12,
                      photometric=tags.pop("photometric", "MONOCHROME2"), **tags)
    ds = pydicom.dcmread(path)
    per_pixel = _unit_gray(ds, _modality(ds, stored))
    np.testing.assert_allclose(unit(read_dicom(path).pixels), per_pixel, atol=QUANTUM)


def test_rgb_becomes_luminance(tmp_path):
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 1] = 255
    img = read_dicom(make_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB")).pixels
    assert img.shape == (4, 5) and img.dtype == np.float32
    np.testing.assert_allclose(img, 0.587, atol=1e-6)


def test_dicm_magic_without_suffix(tmp_path):
    path = make_dicom(tmp_path / "xray.img", ramp12(), bits_stored=12)
    assert is_dicom(path)
    assert load_grayscale(path).dtype == np.uint16


# --- spacing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("tags,spacing,source", [
    ({"PixelSpacing": [0.1, 0.12]}, (0.1, 0.12), "PixelSpacing"),
    ({"PixelSpacing": [0.1, 0.1], "ImagerPixelSpacing": [0.15, 0.15]}, (0.1, 0.1), "PixelSpacing"),
    ({"ImagerPixelSpacing": [0.15, 0.16]}, (0.15, 0.16), "ImagerPixelSpacing"),
    ({"ImagerPixelSpacing": [0.11, 0.11], "EstimatedRadiographicMagnificationFactor": 1.1},
     (0.1, 0.1), "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor 1.1"),
    ({}, None, None),
])
def test_spacing_tags(tmp_path, tags, spacing, source):
    img = read_dicom(make_dicom(tmp_path / "s.dcm", ramp12(), bits_stored=12, **tags))
    assert img.spacing_source == source
    if spacing is None:
        assert img.spacing_mm is None
    else:
        assert img.spacing_mm == pytest.approx(spacing)


# --- predict ------------------------------------------------------------------------------------

@pytest.fixture
def xray_pixels() -> np.ndarray:
    """A 12-bit synthetic X-ray of the conftest kind (bright blobs), 160x128."""
    from conftest import synthetic_image, synthetic_points

    rng = np.random.default_rng(3)
    return synthetic_image(rng, synthetic_points(rng)).astype(np.uint16) * 16


def test_predict_uses_dicom_spacing(tiny_onnx, xray_pixels, tmp_path):
    path = make_dicom(tmp_path / "a.dcm", xray_pixels, bits_stored=12, PixelSpacing=[0.1, 0.12])
    out = tmp_path / "p.json"
    res = cli_run("predict", tiny_onnx, path, "--json", out)
    assert res.exit_code == 0, res.output
    assert "no pixel spacing" not in res.stderr
    rec = json.loads(out.read_text())[0]
    assert rec["spacing_mm"] == pytest.approx([0.1, 0.12])
    assert rec["spacing_source"] == "PixelSpacing" and rec["units"] == "mm"
    lm = rec["landmarks"][0]
    assert lm["x_mm"] == pytest.approx(lm["x_px"] * 0.12)
    assert lm["y_mm"] == pytest.approx(lm["y_px"] * 0.1)


def test_predict_without_spacing_reports_pixels(tiny_onnx, xray_pixels, tmp_path):
    path = make_dicom(tmp_path / "b.dcm", xray_pixels, bits_stored=12)
    out = tmp_path / "p.json"
    res = cli_run("predict", tiny_onnx, path, "--json", out)
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())[0]
    assert rec["units"] == "px" and rec["spacing_source"] is None and rec["spacing_mm"] is None
    assert all(lm["x_mm"] is None and lm["y_mm"] is None and lm["x_px"] is not None
               for lm in rec["landmarks"])
    lines = stderr_lines(res)
    assert len(lines) == 1 and "pixels only" in lines[0] and "--spacing" in lines[0]


@pytest.mark.parametrize("given,expected", [("0.2", [0.2, 0.2]), ("0.2x0.3", [0.2, 0.3])])
def test_spacing_option_overrides_dicom(tiny_onnx, xray_pixels, tmp_path, given, expected):
    path = make_dicom(tmp_path / "c.dcm", xray_pixels, bits_stored=12, PixelSpacing=[0.1, 0.1])
    out = tmp_path / "p.json"
    res = cli_run("predict", tiny_onnx, path, "--spacing", given, "--json", out)
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())[0]
    assert rec["spacing_mm"] == pytest.approx(expected)
    assert rec["spacing_source"] == "--spacing" and rec["units"] == "mm"
    lm = rec["landmarks"][0]
    assert lm["x_mm"] == pytest.approx(lm["x_px"] * expected[1])
    lines = stderr_lines(res)
    assert len(lines) == 1 and "overrides the file's PixelSpacing" in lines[0]


# --- bad input ----------------------------------------------------------------------------------

def _truncated(d: Path) -> Path:
    full = make_dicom(d / "full.dcm", ramp12(64, 64), bits_stored=12).read_bytes()
    (d / "truncated.dcm").write_bytes(full[: len(full) - 3000])
    return d / "truncated.dcm"


def _not_dicom(d: Path) -> Path:
    (d / "notes.dcm").write_text("these are not pixels\n" * 20)
    return d / "notes.dcm"


def _multiframe(d: Path) -> Path:
    frames = np.zeros((2, 4, 4), dtype=np.uint16)
    return make_dicom(d / "multi.dcm", frames[0], pixel_data=frames.tobytes(), NumberOfFrames=2)


def _palette(d: Path) -> Path:
    return make_dicom(d / "pal.dcm", np.zeros((4, 4), np.uint8), photometric="PALETTE COLOR")


def _jpeg_ls(d: Path) -> Path:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    return make_dicom(d / "jls.dcm", np.zeros((4, 4), np.uint16), transfer_syntax=JPEGLSLossless,
                      pixel_data=encapsulate([b"\xff\xd8 not really JPEG-LS \xff\xd9"]))


@pytest.mark.parametrize("make,fragment", [
    (_truncated, "truncated or corrupt"),
    (_not_dicom, "not a readable DICOM file"),
    (_multiframe, "multi-frame"),
    (_palette, "colour DICOM"),
    (_jpeg_ls, "pip install pylibjpeg pylibjpeg-libjpeg"),
])
def test_bad_dicom_exits_2_with_one_line(tiny_onnx, tmp_path, make, fragment):
    path = make(tmp_path)
    if make is _jpeg_ls:
        from pydicom.pixels import get_decoder
        from pydicom.uid import JPEGLSLossless

        if get_decoder(JPEGLSLossless).is_available:
            pytest.skip("a JPEG-LS decoder is installed here")
    out = tmp_path / "p.json"
    res = cli_run("predict", tiny_onnx, path, "--json", out)
    assert res.exit_code == 2, res.output
    lines = stderr_lines(res)
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    assert str(path) in lines[0]
    assert not out.exists()


def test_bad_spacing_option_exits_2(tiny_onnx, xray_pixels, tmp_path):
    path = make_dicom(tmp_path / "d.dcm", xray_pixels, bits_stored=12)
    for bad in ("abc", "0", "-0.1", "0.1x0.2x0.3", "nan"):
        res = cli_run("predict", tiny_onnx, path, "--spacing", bad)
        assert res.exit_code == 2 and len(stderr_lines(res)) == 1, (bad, res.stderr)
        assert "--spacing" in res.stderr


def test_missing_pydicom_names_the_extra(tmp_path, monkeypatch):
    path = make_dicom(tmp_path / "e.dcm", ramp12(), bits_stored=12)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # any `import pydicom` now fails
    with pytest.raises(UserError, match=r"edgeld\[dicom\]"):
        load_grayscale(path)


def test_dicom_reading_is_torch_free(tmp_path):
    path = make_dicom(tmp_path / "f.dcm", ramp12(), bits_stored=12, PixelSpacing=[0.1, 0.1])
    code = f"""
import sys
sys.modules["torch"] = None
from edgeld.data.dicom import read_dicom
img = read_dicom({str(path)!r})
assert img.spacing_source == "PixelSpacing"
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m])
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
