"""Landmarks drawn on a copy of the X-ray, for a human to check at a glance."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edgeld.core.files import atomic_write_bytes
from edgeld.core.letterbox import to_unit_float
from edgeld.runtime import Detection


def render_overlay(image: np.ndarray, detection: Detection,
                   reference_px: np.ndarray | None = None) -> Image.Image:
    """An RGB picture: predictions as numbered circles coloured by confidence, references as crosses."""
    gray = (to_unit_float(image) * 255).astype(np.uint8) if image.dtype != np.uint8 else image
    canvas = Image.fromarray(gray, mode="L").convert("RGB")
    draw = ImageDraw.Draw(canvas)
    r = max(3, round(min(image.shape) / 150))
    font = ImageFont.load_default(size=max(10, 3 * r))
    if reference_px is not None:
        for x, y in reference_px:
            draw.line([(x - r, y - r), (x + r, y + r)], fill=(0, 160, 255), width=max(1, r // 3))
            draw.line([(x - r, y + r), (x + r, y - r)], fill=(0, 160, 255), width=max(1, r // 3))
    for k, ((x, y), conf) in enumerate(zip(detection.landmarks_px, detection.confidence)):
        # green for confident, through yellow, to red for doubtful
        c = float(np.clip(conf, 0, 1))
        colour = (int(255 * min(1, 2 - 2 * c)), int(255 * min(1, 2 * c)), 0)
        draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=max(1, r // 3))
        draw.text((x + r + 2, y - 2 * r), str(k + 1), fill=colour, font=font)
    return canvas


def save_overlay(image: np.ndarray, detection: Detection, path: str | Path,
                 reference_px: np.ndarray | None = None) -> Path:
    """Write the overlay as PNG (atomically)."""
    import io

    buffer = io.BytesIO()
    render_overlay(image, detection, reference_px).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
