"""Image files to 2D grayscale arrays, with errors a user can act on."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeld.core.errors import UserError
from edgeld.data.dicom import DICOM_SUFFIXES, is_dicom, read_dicom
from edgeld.data.limits import MAX_PIXELS


# what a folder of images given to `predict` is taken to hold
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", *DICOM_SUFFIXES)


def load_grayscale(path: str | Path) -> np.ndarray:
    """Read an image file as a 2D array: uint8 for 8-bit files, uint16 for 16-bit ones.

    Colour and palette images are converted to luminance; alpha is dropped. DICOM files (by
    suffix or DICM magic; needs the `dicom` extra) give uint16 display values (65535 = white;
    float32 in [0, 1] for colour or float pixel data) after their rescale,
    VOI window and MONOCHROME1 inversion, see `edgeld.data.dicom`.
    """
    return load_grayscale_and_spacing(path)[0]


def load_grayscale_and_spacing(path: str | Path
                               ) -> tuple[np.ndarray, tuple[float, float] | None, str | None]:
    """`load_grayscale` plus the file's own (row, column) pixel spacing in mm and its source.

    Only DICOM files carry a spacing (source e.g. "PixelSpacing"); other formats give (None, None).
    """
    film = load_reduced(path, None)
    return film.image, film.spacing_mm, film.spacing_source


@dataclass(frozen=True)
class ReducedFilm:
    """An image file decoded at 1/factor of its size (factor 1: its own pixels).

    Reduced pixel (i, j) is the mean of the file's pixels [factor*i, factor*i + factor) on each
    axis (libjpeg's scaled DCT decode; measured on ISBI films, see `draft_reduced`), so its centre
    is at file pixel factor*i + (factor - 1) / 2, exactly as `PIL.Image.reduce(factor)` lays out
    its pixels. The reduced size is the file's divided by factor, rounded up: the last row or
    column may cover fewer file pixels (plus the encoder's padding)."""

    image: np.ndarray
    factor: int
    original_hw: tuple[int, int]  # the file's (height, width)
    spacing_mm: tuple[float, float] | None = None  # the file's own (row, column); DICOM only
    spacing_source: str | None = None

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) (x, y) points in reduced pixels to the file's pixels (centres at integers)."""
        return np.asarray(points, dtype=np.float64) * self.factor + (self.factor - 1) / 2.0


def load_reduced(path: str | Path, max_factor_for: Callable[[tuple[int, int]], int] | None
                 ) -> ReducedFilm:
    """Read an image file, decoding a JPEG at a reduced size when `max_factor_for(height, width)`
    allows a factor of 2 or more (the largest of 2, 4, 8 not above it). Every other file (PNG,
    BMP, TIFF, 16-bit, DICOM), and every file when `max_factor_for` is None, is read exactly as
    `load_grayscale_and_spacing` reads it, with factor 1."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image file: give the image files in it")
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"image is empty (0 bytes): {path}")
    if is_dicom(path):
        dicom = read_dicom(path)
        return ReducedFilm(dicom.pixels, 1, dicom.pixels.shape, dicom.spacing_mm,
                           dicom.spacing_source)
    image, factor, original_hw = _load_pillow(path, max_factor_for)
    return ReducedFilm(image, factor, original_hw)


def draft_reduced(img: Image.Image, max_factor: int) -> int:
    """Ask libjpeg to decode an opened (not yet loaded) 8-bit JPEG at 1/2, 1/4 or 1/8 size, the
    largest not above `max_factor`, as luma only; returns the factor used (1: no reduction, e.g.
    not a JPEG, or `max_factor` 1, which still decodes a colour-coded JPEG to luma alone).

    libjpeg's DCT scaling computes each reduced pixel from its 8x8 block's coefficients; measured
    on ISBI 2015 films (2400x1935) against a numpy box mean of the full decode, reduced pixel i is
    the mean of source pixels [f*i, f*i + f) to within 0.01 source px of shift and drift (mean
    absolute difference 0.2 grey levels at 1/2 and 1/4), i.e. src = (i + 0.5) * f - 0.5 with f the
    integer factor, NOT the size ratio (1935 / 968 would put the right edge 1 px off)."""
    factor = 1
    while factor * 2 <= min(max_factor, 8):
        factor *= 2
    if img.format != "JPEG" or img.mode not in ("L", "RGB"):
        return 1
    width, height = img.size
    if factor == 1 or min(width, height) < factor:
        # luma straight from the decoder, at full size: no chroma upsampling, no colour conversion
        # (37 -> 17 ms for an ISBI film, benchmarks/cpu-2core/file-path), and the same pixels as
        # decoding to RGB and converting for a grey film (neutral chroma: 299 of ISBI's 300 films)
        img.draft("L", None)
        return 1
    # Pillow's draft picks the largest of 8, 4, 2 not above min(width // w, height // h): f here
    img.draft("L", (width // factor, height // factor))
    if img.size != (-(-width // factor), -(-height // factor)):
        raise ValueError(f"unexpected reduced JPEG decode: {width}x{height} -> {img.width}x"
                         f"{img.height} at 1/{factor}")
    return factor


def _load_pillow(path: Path, max_factor_for: Callable[[tuple[int, int]], int] | None = None
                 ) -> tuple[np.ndarray, int, tuple[int, int]]:
    """The file as a 2D array, and the factor by which it was reduced while decoding (1 unless
    `max_factor_for`, given the file's (height, width), allows a reduced JPEG decode: see
    `draft_reduced`)."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        # Pillow's warning between its limit and twice it would add a line before our own error;
        # catch_warnings is process-global, so a race can at worst leave that one warning silenced
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            if img.width * img.height > MAX_PIXELS:  # header only so far: nothing allocated
                raise Image.DecompressionBombError(f"{img.width}x{img.height} pixels")
            original_hw = (img.height, img.width)
            factor = draft_reduced(img, 1 if max_factor_for is None else max_factor_for(original_hw))
            img.load()
            return _to_gray_array(img), factor, original_hw
    except Image.DecompressionBombError as exc:
        raise UserError(f"image is too large to process (over {MAX_PIXELS} pixels): {path}") from exc
    except UnidentifiedImageError as exc:
        raise UserError(f"not a readable image (unknown or corrupt format): {path}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"image is truncated or corrupt ({exc}): {path}") from exc


def _to_gray_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img, dtype=np.uint16)
    if img.mode == "I":
        arr = np.asarray(img)
        return np.clip(arr, 0, 65535).astype(np.uint16)
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)
