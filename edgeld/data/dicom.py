"""DICOM X-rays to the same grayscale arrays `load_grayscale` gives, plus their pixel spacing.

pydicom is optional (the `dicom` extra) and imported inside the functions that need it, so the rest
of `edgeld.data` and the torch-free runtime import without it. Nothing here imports torch.

Pixel values follow the DICOM grayscale pipeline (PS3.3 C.11): stored values (BitsStored) ->
modality LUT (RescaleSlope/RescaleIntercept or Modality LUT Sequence) -> VOI (VOI LUT Sequence, else
WindowCenter/WindowWidth, else min-max of the values present) -> MONOCHROME1 inverted, so that
bone is bright as in the JPEG/PNG X-rays the models are trained on.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeld.core.errors import UserError, missing_extra
from edgeld.data.limits import MAX_PIXELS

DICOM_SUFFIXES = (".dcm", ".dicom")
_MAGIC_OFFSET = 128  # a DICOM file: 128-byte preamble, then b"DICM" (PS3.10 7.1)
# integer films whose stored values span fewer levels go through one lookup table (16-bit data
# always does); wider ones (32-bit stored values) through float64 arithmetic per pixel
MAX_LUT_LEVELS = 1 << 17

# What to pip install for compressed transfer syntaxes pydicom cannot decode on its own.
_LIBJPEG = "pylibjpeg pylibjpeg-libjpeg"
_OPENJPEG = "pylibjpeg pylibjpeg-openjpeg"
_DECODER_HINTS = {
    "1.2.840.10008.1.2.4.50": _LIBJPEG,  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": _LIBJPEG,  # JPEG Extended (12-bit)
    "1.2.840.10008.1.2.4.57": _LIBJPEG,  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": _LIBJPEG,  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": _LIBJPEG,  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": _LIBJPEG,  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": _OPENJPEG,  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": _OPENJPEG,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _OPENJPEG,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": _OPENJPEG,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": _OPENJPEG,  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE Lossless
}
_ANY_DECODER = "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg (or python-gdcm)"


@dataclass(frozen=True)
class DicomImage:
    """A DICOM image as the rest of edgeld sees it.

    pixels: 2D display grayscale (bright = dense): uint16 (65535 = white) for integer
        grayscale data, as `load_grayscale` gives 16-bit files; float32 in [0, 1] for RGB
        (luminance) and float pixel data.
    spacing_mm: (row, column) pixel spacing in mm, or None when the file has none.
    spacing_source: which tags the spacing came from, e.g. "PixelSpacing", or None.
    """

    pixels: np.ndarray
    spacing_mm: tuple[float, float] | None
    spacing_source: str | None


def is_dicom(path: str | Path) -> bool:
    """True for a .dcm/.dicom file name or a file with the DICM magic at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as f:
            head = f.read(_MAGIC_OFFSET + 4)
    except OSError:
        return False
    return head[_MAGIC_OFFSET:] == b"DICM"


def read_dicom(path: str | Path) -> DicomImage:
    """Read a single-frame grayscale (or RGB, converted to luminance) DICOM image and its spacing.

    Raises UserError (one line) for a missing, corrupt, multi-frame, colour or undecodable file,
    and when pydicom is not installed.
    """
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError as exc:
        raise missing_extra("pydicom", "dicom") from exc
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"image is empty (0 bytes): {path}")
    # pydicom warns about malformed values on stderr; the CLI promises one line there, and
    # anything that matters becomes a UserError below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forced = False
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            # some older files have no preamble/DICM header; trust the suffix and parse anyway
            try:
                ds = pydicom.dcmread(path, force=True)
                forced = True
            except Exception as exc:  # noqa: BLE001 - any parse failure of user data is bad input
                raise UserError(f"not a readable DICOM file ({_one_line(exc)}): {path}") from exc
        except Exception as exc:  # noqa: BLE001 - parse errors of a truncated file vary by spot
            raise UserError(f"DICOM file is truncated or corrupt ({_one_line(exc)}): {path}") from exc
        if forced and "PixelData" not in ds:  # parsed "anything" without a header: not DICOM
            raise UserError(f"not a readable DICOM file (no DICM header, no pixel data): {path}")
        return image_from_dataset(ds, path)


def image_from_dataset(ds: Any, label: str | Path) -> DicomImage:
    """A parsed pydicom Dataset (a file read, or one received over the network) as a DicomImage.

    `label` names the source in error messages. Raises UserError as `read_dicom` does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_supported(ds, label)
        stored = _decode(ds, label)
        try:
            pixels = _to_display(ds, stored)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError,
                NotImplementedError) as exc:
            raise UserError(f"DICOM pixel transform tags are malformed ({_one_line(exc)}): "
                            f"{label}") from exc
        spacing, source = dicom_spacing(ds)
    return DicomImage(pixels, spacing, source)


def dicom_spacing(ds: Any) -> tuple[tuple[float, float] | None, str | None]:
    """(row, column) spacing in mm of a pydicom Dataset and the tags it came from.

    PixelSpacing (calibrated at the patient) wins; else ImagerPixelSpacing (at the detector),
    divided by EstimatedRadiographicMagnificationFactor when the file gives one, since landmarks
    are measured on the patient, not on the detector. Malformed values count as absent.
    """
    pair = _positive_pair(ds, "PixelSpacing")
    if pair is not None:
        return pair, "PixelSpacing"
    pair = _positive_pair(ds, "ImagerPixelSpacing")
    if pair is None:
        return None, None
    factor = _positive_float(ds, "EstimatedRadiographicMagnificationFactor")
    if factor is None:
        return pair, "ImagerPixelSpacing"
    return ((pair[0] / factor, pair[1] / factor),
            f"ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor {factor:g}")


def _check_supported(ds: Any, path: Path) -> None:
    if "PixelData" not in ds:
        # pydicom stops quietly at the end of a file, so a cut-off header looks like this too
        raise UserError(f"DICOM file has no pixel data (truncated, or not an image): {path}")
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        frames = 1
    if frames > 1:
        raise UserError(f"multi-frame DICOM ({frames} frames) is not supported: save the frame "
                        f"to analyse as a single-frame file: {path}")
    try:
        pixels = int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0)
    except (TypeError, ValueError):
        pixels = 0
    if pixels > MAX_PIXELS:  # refuse before decoding allocates it, as for other formats
        raise UserError(f"image is too large to process (over {MAX_PIXELS} pixels): {path}")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    samples = int(ds.get("SamplesPerPixel") or 1)
    if not ((photometric in ("MONOCHROME1", "MONOCHROME2") and samples == 1)
            or (photometric == "RGB" and samples == 3)):
        raise UserError(f"colour DICOM ({photometric}, {samples} samples per pixel) is not "
                        f"supported: only MONOCHROME1, MONOCHROME2 and RGB images are read: {path}")


def _decode(ds: Any, path: Path) -> np.ndarray:
    """Stored pixel values, with the bits above BitsStored masked off (signed ones sign-extended)."""
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom's decoders raise many types
        if tsyntax is not None and tsyntax.is_compressed and not _decoder_available(tsyntax):
            hint = _DECODER_HINTS.get(str(tsyntax), _ANY_DECODER)
            raise UserError(f"cannot decode {tsyntax.name} DICOM pixel data: "
                            f"pip install {hint}: {path}") from exc
        raise UserError(f"DICOM pixel data is truncated or corrupt ({_one_line(exc)}): "
                        f"{path}") from exc
    if arr.dtype.kind not in "ui":
        return arr
    # pydicom 3 masks the unused high bits itself, 2.x does not always; doing it here is harmless
    bits = int(ds.get("BitsStored") or arr.dtype.itemsize * 8)
    if bits >= arr.dtype.itemsize * 8:
        return arr
    # in the array's own width (no wider copy): mask as unsigned, then sign-extend by shifting the
    # sign bit to the top and back (an arithmetic shift on the signed view)
    raw = arr.view(arr.dtype.str.replace("i", "u")) & ((1 << bits) - 1)  # same bytes, unsigned
    if arr.dtype.kind == "u":
        return raw
    shift = arr.dtype.itemsize * 8 - bits
    signed = (raw << shift).view(arr.dtype)
    signed >>= shift
    return signed


def _decoder_available(tsyntax: Any) -> bool:
    """Whether pydicom has a working decoder for this transfer syntax (False when unsure)."""
    try:
        from pydicom.pixels import get_decoder  # pydicom >= 3
    except ImportError:
        return False
    try:
        return bool(get_decoder(tsyntax).is_available)
    except Exception:  # noqa: BLE001 - no decoder registered for this syntax at all
        return False


def _to_display(ds: Any, stored: np.ndarray) -> np.ndarray:
    """Stored values to display grayscale: uint16 (0 black, 65535 white) for integer grayscale,
    else float32 in [0, 1]."""
    if stored.ndim == 3:  # RGB: luminance as Pillow's "L" (ITU-R 601); no LUTs apply to colour
        gray = stored.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        top = float((1 << int(ds.get("BitsStored") or 8)) - 1)
        return np.clip(gray / top, 0.0, 1.0).astype(np.float32)
    if stored.dtype.kind == "u" and stored.dtype.itemsize <= 2:  # the usual X-ray: 8-16 bits
        return _display_by_table(ds, stored, 0, (1 << stored.dtype.itemsize * 8) - 1)
    if stored.dtype.kind in "ui" and stored.size:
        lo, hi = int(stored.min()), int(stored.max())
        if hi - lo < MAX_LUT_LEVELS:
            return _display_by_table(ds, stored, lo, hi)
    return _unit_gray(ds, _modality(ds, stored)).astype(np.float32)


def _display_by_table(ds: Any, stored: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Integer stored values in [lo, hi] through the whole pipeline as one lookup table: the
    transforms run on the (at most 128k) levels, not on the (millions of) pixels, and the film
    stays integer (2 bytes a pixel) instead of passing through float64 copies."""
    if lo == 0:  # unsigned: the stored values index the table themselves
        index = stored
    else:  # stored - lo is in [0, hi - lo]; only 8- and 16-bit signed data could wrap computing it
        narrow_signed = stored.dtype.kind == "i" and stored.dtype.itemsize < 4
        index = stored.astype(np.int32) - lo if narrow_signed else stored - lo
    levels = _modality(ds, np.arange(lo, hi + 1, dtype=np.int64))

    def extent() -> tuple[float, float]:  # of the values present, as the float path takes it
        present = levels[np.bincount(index.ravel(), minlength=levels.size) > 0]
        return float(present.min()), float(present.max())

    table = _unit_gray(ds, levels, extent)
    return np.rint(table * 65535.0).astype(np.uint16)[index]


def _unit_gray(ds: Any, values: np.ndarray, extent=None) -> np.ndarray:
    """Modality values to display grayscale in [0, 1] (float64): VOI, then MONOCHROME1
    inverted. `extent()` gives the (min, max) of the values present for a min-max VOI (default:
    those of `values`)."""
    out = _voi(ds, values, extent)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        out = 1.0 - out  # MONOCHROME1: the lowest value is white
    return out


def _modality(ds: Any, stored: np.ndarray) -> np.ndarray:
    """The modality LUT: stored values to meaningful values (float64)."""
    if ds.get("ModalityLUTSequence"):
        return np.asarray(_pixels_function("apply_modality_lut")(stored, ds), dtype=np.float64)
    slope = _first_float(ds.get("RescaleSlope"))
    intercept = _first_float(ds.get("RescaleIntercept"))
    slope = 1.0 if slope is None else slope
    if slope == 0:  # would flatten the image to one value
        raise ValueError("RescaleSlope is 0")
    intercept = 0.0 if intercept is None else intercept
    return stored.astype(np.float64) * slope + intercept


def _voi(ds: Any, values: np.ndarray, extent=None) -> np.ndarray:
    """The VOI transform to [0, 1]: VOI LUT Sequence, else the first window, else min-max."""
    if ds.get("VOILUTSequence"):
        apply_voi_lut = _pixels_function("apply_voi_lut")
        # pydicom looks LUTs up by integer index; its output is in the LUT's own units, so scale
        # by the LUT's whole output range (found by running every input the LUT covers through it)
        descriptor = ds.VOILUTSequence[0].LUTDescriptor
        first, entries = int(descriptor[1]), int(descriptor[0]) or 1 << 16
        table = np.asarray(apply_voi_lut(np.arange(first, first + entries, dtype=np.int64), ds,
                                         index=0, prefer_lut=True), dtype=np.float64)
        out = np.asarray(apply_voi_lut(np.rint(values).astype(np.int64), ds, index=0,
                                       prefer_lut=True), dtype=np.float64)
        return _stretch(out, table.min(), table.max())
    center = _first_float(ds.get("WindowCenter"))
    width = _first_float(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        return _window(values, center, width, str(ds.get("VOILUTFunction") or "LINEAR").upper())
    lo, hi = extent() if extent is not None else (float(values.min()), float(values.max()))
    return _stretch(values, lo, hi)


def _window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2-3 windowing with output range [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((x - center) / width + 0.5, 0.0, 1.0)
    if width < 1:  # LINEAR requires width >= 1; below that it is a threshold at the centre
        return (x > center - 0.5).astype(np.float64)
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _stretch(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:  # a flat image carries no contrast; black rather than a division by zero
        return np.zeros(x.shape, dtype=np.float64)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def _pixels_function(name: str):
    try:
        import pydicom.pixels as module  # pydicom >= 3
    except ImportError:
        import pydicom.pixel_data_handlers.util as module  # pydicom 2.x
    return getattr(module, name)


def _first_float(value: Any) -> float | None:
    """The first of a possibly multi-valued DS (several windows: the first is the default)."""
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _positive_float(ds: Any, keyword: str) -> float | None:
    try:
        value = _first_float(ds.get(keyword))
    except (TypeError, ValueError):
        return None
    return value if value is not None and value > 0 else None


def _positive_pair(ds: Any, keyword: str) -> tuple[float, float] | None:
    try:
        value = ds.get(keyword)
        pair = tuple(float(v) for v in value) if value is not None else ()
    except (TypeError, ValueError):
        return None
    if len(pair) != 2 or not all(np.isfinite(v) and v > 0 for v in pair):
        return None
    return pair[0], pair[1]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
