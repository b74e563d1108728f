"""Patches around landmarks for the cascade's refinement stage. numpy + Pillow, no torch.

The source image is box-reduced by an integer `factor` (ISBI: 2, i.e. 0.2 mm per pixel), then a
`size` x `size` patch is sampled (bilinear, subpixel) centred on each first-stage landmark.
Coordinates use pixel centres: a reduced pixel u covers source pixels factor*u .. factor*u+factor-1,
so its centre is at source factor*u + (factor - 1) / 2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgeld.core.letterbox import normalize, to_unit_float
from edgeld.runtime.spacing import to_refiner_scale


@dataclass(frozen=True)
class PatchSpec:
    size: int = 64
    factor: int = 2

    def source_to_reduced(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - (self.factor - 1) / 2.0) / self.factor

    def reduced_to_source(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) * self.factor + (self.factor - 1) / 2.0

    def patch_origin(self, centres_reduced: np.ndarray) -> np.ndarray:
        """Reduced-image coordinates of each patch's pixel (0, 0)."""
        return np.asarray(centres_reduced, dtype=np.float64) - (self.size - 1) / 2.0


def reduce_image(image: np.ndarray, factor: int) -> Image.Image:
    """The source as a Pillow image reduced by an integer factor (box filter).

    8-bit images stay 8-bit ("L"): converting a full-size X-ray to float first costs more than
    the whole refinement; other depths become float in [0, 1] ("F")."""
    if image.dtype == np.uint8:
        pil = Image.fromarray(image, mode="L")
    else:
        pil = Image.fromarray(to_unit_float(image), mode="F")
    return pil.reduce(factor) if factor > 1 else pil


def crop_patches(reduced: Image.Image | np.ndarray, centres_reduced: np.ndarray, spec: PatchSpec, mean: float,
                 std: float) -> np.ndarray:
    """Normalized (K, 1, size, size) float32 patches centred on each (x, y) point, sampled
    bilinearly in float32 (zero outside the image).

    Patch pixel (i, j) samples the reduced image at (origin_x + j, origin_y + i) (pixel centres).
    In numpy, one (size + 1)^2 window per patch and two separable blends: a third of the time of
    Pillow's affine transform, which also rounded every sample to a grey level (the refiners were
    trained on those; the difference is at most one grey level)."""
    pixels = np.asarray(reduced)
    scale = np.float32(1.0 / 255.0 if pixels.dtype == np.uint8 else 1.0)
    origins = spec.patch_origin(centres_reduced)
    whole = np.floor(origins).astype(np.int64)
    frac = (origins - whole).astype(np.float32)
    n = spec.size
    patches = np.empty((len(origins), 1, n, n), dtype=np.float32)
    for i, ((x, y), (fx, fy)) in enumerate(zip(whole, frac)):
        patches[i, 0] = _blend(_window(pixels, int(x), int(y), n + 1) * scale, fx, fy, n)
    return normalize(patches, mean, std)


def _blend(w: np.ndarray, fx, fy, n: int) -> np.ndarray:
    """Bilinear samples at sub-pixel offset (fx, fy) of (..., n + 1, n + 1) windows: (..., n, n)."""
    rows = w[..., :n] * (1 - fx) + w[..., 1:] * fx
    return rows[..., :n, :] * (1 - fy) + rows[..., 1:, :] * fy


def _window(pixels: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """pixels[y:y+size, x:x+size] as float32, zero where it falls outside the image."""
    h, w = pixels.shape
    if 0 <= x and x + size <= w and 0 <= y and y + size <= h:  # the usual case: inside the film
        return pixels[y:y + size, x:x + size].astype(np.float32)
    out = np.zeros((size, size), dtype=np.float32)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + size, w), min(y + size, h)
    if x1 > x0 and y1 > y0:
        out[y0 - y:y1 - y, x0 - x:x1 - x] = pixels[y0:y1, x0:x1]
    return out


def patches_around(image: np.ndarray, points_src: np.ndarray, spec: PatchSpec, mean: float,
                   std: float) -> tuple[np.ndarray, np.ndarray]:
    """A refiner's input for one image, exactly as the cascade makes it: normalized (K, 1, size,
    size) patches around the source-pixel points (x, y), and the centres in reduced pixels.
    The runtime's refinement and the refiners' calibration sets both cut their patches here."""
    centres = spec.source_to_reduced(points_src)
    if spec.factor == 1:
        return crop_patches(reduce_image(image, 1), centres, spec, mean, std), centres
    fast = _inner_patches(image, centres, spec, mean, std)
    if fast is not None:
        return fast, centres
    patches = np.concatenate([_window_patch(image, c, spec, mean, std) for c in centres])
    return patches, centres


def patches_at_training_scale(image: np.ndarray, points_src: np.ndarray,
                              spacing_mm: tuple[float, float] | None,
                              film_spacing_mm: tuple[float, float] | None, spec: PatchSpec,
                              mean: float, std: float) -> np.ndarray:
    """`patches_around` a film as the cascade's refiner sees it: a film whose spacing differs
    from the refiner's training films' (`film_spacing_mm`) is first resampled to one pixel per
    patch pixel (runtime/spacing.py: to_refiner_scale). For a refiner's calibration set and its
    INT8 gate's layer ranking."""
    image, at, factor, _ = to_refiner_scale(image, points_src, spacing_mm, 1, film_spacing_mm,
                                            spec.factor)
    return patches_around(image, at, PatchSpec(spec.size, spec.factor // factor), mean, std)[0]


def _inner_patches(image: np.ndarray, centres: np.ndarray, spec: PatchSpec, mean: float,
                   std: float) -> np.ndarray | None:
    """The usual case in one vectorised pass: an 8-bit film, factor 2, every patch well inside.
    The same arithmetic as `_window_patch` (Pillow's 2x2 rounding, then `crop_patches`' blends),
    so the same numbers; None when the case does not apply."""
    n, f = spec.size, spec.factor
    origins = spec.patch_origin(centres)
    whole = np.floor(origins).astype(np.int64)
    if f != 2 or image.dtype != np.uint8 or whole.min() < 0 or \
            f * (whole[:, 1].max() + n + 1) > image.shape[0] or \
            f * (whole[:, 0].max() + n + 1) > image.shape[1]:
        return None
    side = f * (n + 1)  # source pixels under the n + 1 reduced pixels a patch reads per axis
    blocks = np.stack([image[f * y:f * y + side, f * x:f * x + side] for x, y in whole])
    w = _reduce_2x2(blocks).astype(np.float32) * np.float32(1.0 / 255.0)
    frac = (origins - whole).astype(np.float32)
    patches = _blend(w, frac[:, 0, None, None], frac[:, 1, None, None], n)
    return normalize(patches[:, None], mean, std)


# reduced pixels a window keeps beyond the patch on each side: bilinear sampling reads one
# neighbour, so one would do; two leave room for rounding of the origin
WINDOW_MARGIN = 2


def _window_patch(image: np.ndarray, centre: np.ndarray, spec: PatchSpec, mean: float,
                  std: float) -> np.ndarray:
    """One patch cut from a window of the source reduced on its own: box reduction is local, so a
    window cut on the factor's grid reduces to exactly those pixels of the whole reduced image
    (tests/test_cascade.py checks equality), at a few percent of reducing the whole film."""
    f = spec.factor
    reduced_hw = (-(-image.shape[0] // f), -(-image.shape[1] // f))  # Pillow rounds up
    origin = spec.patch_origin(centre[None])[0]
    lo = np.floor(origin).astype(int) - WINDOW_MARGIN
    hi = lo + spec.size + 2 * WINDOW_MARGIN + 1
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], reduced_hw[1]), min(hi[1], reduced_hw[0])
    if x1 <= x0 or y1 <= y0:  # the patch lies wholly off the film: all fill, as before
        return normalize(np.zeros((1, 1, spec.size, spec.size), np.float32), mean, std)
    window = _reduce_window(image[y0 * f:y1 * f, x0 * f:x1 * f], f)
    return crop_patches(window, (origin - (x0, y0) + (spec.size - 1) / 2.0)[None], spec, mean, std)


def _reduce_window(window: np.ndarray, factor: int) -> np.ndarray | Image.Image:
    """`reduce_image` of a window. An 8-bit window of whole 2x2 blocks is reduced in numpy with
    Pillow's own integer rounding ((a + b + c + d + 2) >> 2, its 2x2 reduction for 8-bit data),
    so the pixels are the same and the per-window Pillow round trip is saved; anything else goes
    through Pillow."""
    h, w = window.shape
    if factor != 2 or window.dtype != np.uint8 or h % 2 or w % 2:
        return reduce_image(np.ascontiguousarray(window), factor)
    return _reduce_2x2(window)


def _reduce_2x2(pixels: np.ndarray) -> np.ndarray:
    """8-bit (..., 2h, 2w) -> (..., h, w) box means, rounded as Pillow's 2x2 reduce rounds."""
    b = pixels.astype(np.uint16)
    total = b[..., 0::2, 0::2] + b[..., 0::2, 1::2] + b[..., 1::2, 0::2] + b[..., 1::2, 1::2]
    return ((total + 2) >> 2).astype(np.uint8)
