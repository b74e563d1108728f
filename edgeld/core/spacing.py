"""Pixel spacing as users write it: "0.1" (square pixels) or "0.1x0.12" (row x column), in mm."""
from __future__ import annotations

import math

from edgeld.core.errors import UserError


def parse_spacing(text: str, what: str = "--spacing") -> tuple[float, float]:
    """A (row, column) spacing in mm; a UserError naming `what` (the option or field) otherwise."""
    try:
        values = tuple(float(v) for v in text.lower().split("x"))
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise UserError(f"{what} must be a positive number of mm like 0.1, or ROWxCOL like "
                        f"0.1x0.12 (got {text!r})")
    return values[0], values[1]
