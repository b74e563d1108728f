"""Image files to 2D grayscale arrays, with errors a user can act on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeld.errors import UserError

# Decoding a 200-megapixel file is almost certainly a mistake on an X-ray device; refuse it before
# allocating (Pillow checks the header size against this limit).
MAX_PIXELS = 200_000_000


def load_grayscale(path: str | Path) -> np.ndarray:
    """Read an image file as a 2D array: uint8 for 8-bit files, uint16 for 16-bit ones.

    Colour and palette images are converted to luminance; alpha is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"image is empty (0 bytes): {path}")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(path) as img:
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
