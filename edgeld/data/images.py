"""Image files to 2D grayscale arrays, with errors a user can act on."""
from __future__ import annotations

import warnings
from pathlib import Path

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
    suffix or DICM magic; needs the `dicom` extra) give float32 in [0, 1] after their rescale,
    VOI window and MONOCHROME1 inversion, see `edgeld.data.dicom`.
    """
    return load_grayscale_and_spacing(path)[0]


def load_grayscale_and_spacing(path: str | Path
                               ) -> tuple[np.ndarray, tuple[float, float] | None, str | None]:
    """`load_grayscale` plus the file's own (row, column) pixel spacing in mm and its source.

    Only DICOM files carry a spacing (source e.g. "PixelSpacing"); other formats give (None, None).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image file: give the image files in it")
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"image is empty (0 bytes): {path}")
    if is_dicom(path):
        dicom = read_dicom(path)
        return dicom.pixels, dicom.spacing_mm, dicom.spacing_source
    return _load_pillow(path), None, None


def _load_pillow(path: Path) -> np.ndarray:
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
            img.load()
            return _to_gray_array(img)
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
