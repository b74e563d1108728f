"""Landmarks drawn on a copy of the X-ray, for a human to check at a glance."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edgeld.core.files import atomic_write_bytes
from edgeld.core.letterbox import to_unit_float
from edgeld.runtime import Detection

REFERENCE_COLOUR = (0, 160, 255)


def render_overlay(image: np.ndarray, detection: Detection,
                   reference_px: np.ndarray | None = None) -> Image.Image:
    """An RGB picture: predictions as numbered circles coloured by confidence, references as
    crosses, and a legend panel on the right saying which number is which landmark and what the
    colours mean, so the picture stands alone."""
    gray = (to_unit_float(image) * 255).astype(np.uint8) if image.dtype != np.uint8 else image
    film = Image.fromarray(gray, mode="L").convert("RGB")
    r = max(3, round(min(image.shape) / 150))
    font = ImageFont.load_default(size=max(10, 3 * r))
    legend_width = max(220, 20 * font.size)
    canvas = Image.new("RGB", (film.width + legend_width, film.height), (0, 0, 0))
    canvas.paste(film, (0, 0))
    draw = ImageDraw.Draw(canvas)
    if reference_px is not None:
        for x, y in reference_px:
            _cross(draw, x, y, r)
    for k, ((x, y), conf) in enumerate(zip(detection.landmarks_px, detection.confidence)):
        colour = _confidence_colour(conf)
        draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=max(1, r // 3))
        draw.text((x + r + 2, y - 2 * r), str(k + 1), fill=colour, font=font)
    _legend(draw, film.width + font.size, font, detection, reference_px is not None, r)
    return canvas


def _confidence_colour(conf: float) -> tuple[int, int, int]:
    """Green for confident, through yellow, to red for doubtful."""
    c = float(np.clip(conf, 0, 1))
    return int(255 * min(1, 2 - 2 * c)), int(255 * min(1, 2 * c)), 0


def _cross(draw: ImageDraw.ImageDraw, x: float, y: float, r: int) -> None:
    draw.line([(x - r, y - r), (x + r, y + r)], fill=REFERENCE_COLOUR, width=max(1, r // 3))
    draw.line([(x - r, y + r), (x + r, y - r)], fill=REFERENCE_COLOUR, width=max(1, r // 3))


def _legend(draw: ImageDraw.ImageDraw, left: int, font, detection: Detection, references: bool,
            r: int) -> None:
    """Numbers to landmark names (with each one's confidence), the colour key, the cross key."""
    step = int(font.size * 1.4)
    y = step
    draw.text((left, y), "landmarks (circle colour = confidence)", fill=(255, 255, 255), font=font)
    y += step
    for k, (name, conf) in enumerate(zip(detection.names, detection.confidence)):
        draw.text((left, y), f"{k + 1:>2} {name}  {conf:.2f}", fill=_confidence_colour(conf),
                  font=font)
        y += step
    y += step
    for conf, words in ((1.0, "confident (1.0)"), (0.5, "middling (0.5)"), (0.0, "doubtful (0.0)")):
        draw.ellipse([left, y, left + 2 * r, y + 2 * r], outline=_confidence_colour(conf),
                     width=max(1, r // 3))
        draw.text((left + 3 * r, y), words, fill=(255, 255, 255), font=font)
        y += step
    if references:
        _cross(draw, left + r, y + r, r)
        draw.text((left + 3 * r, y), "reference annotation", fill=(255, 255, 255), font=font)
        y += step
    if detection.orientation != "upright":
        draw.text((left, y + step), f"film came in {detection.orientation}", fill=(255, 255, 255),
                  font=font)


def save_overlay(image: np.ndarray, detection: Detection, path: str | Path,
                 reference_px: np.ndarray | None = None) -> Path:
    """Write the overlay as PNG (atomically)."""
    import io

    buffer = io.BytesIO()
    render_overlay(image, detection, reference_px).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
