"""Pillow's 8-bit letterbox resize on two cores, bit for bit the one-thread result.

The letterbox of a 2400x1935 film is Pillow's integer box reduction (`reduce(4)`) and then an
antialiased bilinear resize, most of the letterbox's 1.7 ms in a 6 ms detection on the 2-core VM,
while ONNX Runtime's threads sit idle. Both steps release the GIL, so one helper thread takes half of each:
- the reduction, split between two bands of rows at a multiple of the factor: each output pixel
  averages the same source block either way, so this is exact by construction;
- the resize, split between two bands of output columns, each a `resize` over its part of the
  box. Pillow computes each output column's fixed-point weights from its box and its centre, so the
  split is exact when both halves get the same integer weights and bounds as the whole, and Pillow
  runs the horizontal pass first in both. `split_plan` checks exactly that, once per size, by
  recomputing Pillow 13's weights (libImaging/Resample.c: `precompute_coeffs`,
  `normalize_coeffs_8bpc`); a size where no split column is exact resizes on one thread.
Measured interleaved on the 2-core VM, ISBI film: the letterbox 1.36 against 1.67 ms, the INT8
student end to end 5.67 against 5.93 ms (benchmarks/cpu-2core/fast-host/split-letterbox/).
tests/test_parallel_resize.py checks the result against Pillow's own on every shape it tries.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

# below this a thread hand-off costs more than half the work saves
MIN_PIXELS = 1_000_000
PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point weights for 8-bit images
SPLIT_SEARCH = 16  # split columns tried on each side of the middle


@dataclass(frozen=True)
class SplitPlan:
    """How one (source shape, output size, reducing_gap) resize splits: the reduction's factors
    and row split, the reduced image's box, and the output column where the halves meet."""

    fx: int
    fy: int
    split_row: int
    box_w: float
    box_h: float
    split_col: int
    split_x: float  # the box coordinate at split_col, in reduced pixels


_POOL: ThreadPoolExecutor | None = None


def _helper() -> ThreadPoolExecutor | None:
    """One helper thread for this process, or None with a single usable core."""
    global _POOL
    if _POOL is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if cores < 2:
            return None
        _POOL = ThreadPoolExecutor(1, thread_name_prefix="edgeld-letterbox")
    return _POOL


def _forget_pool() -> None:
    # a forked child (a DataLoader worker) inherits the executor but not its thread
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _weights_8bpc(in_size: int, in0: float, in1: float, out_size: int
                  ) -> list[tuple[int, tuple[int, ...]]]:
    """Per output pixel, Pillow's first source pixel and integer bilinear weights for the box
    [in0, in1) of an 8-bit image (both box ends C floats, as Pillow parses them)."""
    lo, hi = float(np.float32(in0)), float(np.float32(in1))
    scale = float(np.float32(hi - lo)) / out_size  # C: (double)(in1 - in0) / outSize, in floats
    filterscale = max(scale, 1.0)
    support = filterscale  # the bilinear filter's support, 1, widened when shrinking
    inverse = 1.0 / filterscale
    one = 1 << PRECISION_BITS
    out = []
    for xx in range(out_size):
        centre = lo + (xx + 0.5) * scale
        xmin = max(int(centre - support + 0.5), 0)
        xmax = min(int(centre + support + 0.5), in_size) - xmin
        taps = [max(0.0, 1.0 - abs((x + xmin - centre + 0.5) * inverse)) for x in range(xmax)]
        total = 0.0
        for t in taps:  # sequential, as the C loop adds them
            total += t
        if total != 0.0:
            taps = [t / total for t in taps]
        out.append((xmin, tuple(int(-0.5 + t * one) if t < 0 else int(0.5 + t * one) for t in taps)))
    return out


def _horizontal_first(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> bool:
    """Pillow's pass order: vertical first only when the height shrinks more than twice the width."""
    dy, dx = in_hw[0] - out_hw[0], in_hw[1] - out_hw[1]
    return not (dy > 0 and dy > dx * 2)


@lru_cache(maxsize=32)
def split_plan(shape: tuple[int, int], size: tuple[int, int], reducing_gap: float | None
               ) -> SplitPlan | None:
    """The exact two-thread split of `Image.resize(size, BILINEAR, reducing_gap=...)` for an
    8-bit image of `shape` (rows, columns; size is (width, height) as Pillow takes it), or None."""
    h, w = shape
    out_w, out_h = size
    if reducing_gap is None or out_w < 4:
        return None
    fx = int(w / out_w / reducing_gap) or 1
    fy = int(h / out_h / reducing_gap) or 1
    if fx == 1 and fy == 1:
        return None
    rows, cols = -(-h // fy), -(-w // fx)
    box_w, box_h = w / fx, h / fy
    if not _horizontal_first((rows, cols), (out_h, out_w)):
        return None  # the halves would run the horizontal pass first, the whole would not
    whole = _weights_8bpc(cols, 0.0, box_w, out_w)
    middle = out_w // 2
    for offset in sorted(range(-SPLIT_SEARCH, SPLIT_SEARCH + 1), key=abs):
        col = middle + offset
        if not 1 <= col < out_w:
            continue
        split_x = col * box_w / out_w
        if (whole[:col] == _weights_8bpc(cols, 0.0, split_x, col)
                and whole[col:] == _weights_8bpc(cols, split_x, box_w, out_w - col)):
            return SplitPlan(fx, fy, (rows // 2) * fy, box_w, box_h, col, split_x)
    return None


def resize_uint8(image: np.ndarray, size: tuple[int, int], reducing_gap: float | None) -> np.ndarray:
    """`Image.fromarray(image, "L").resize(size, BILINEAR, reducing_gap=...)` as a uint8 array,
    on two threads where `split_plan` finds an exact split and the image is large."""
    plan = split_plan(image.shape, tuple(size), reducing_gap) if image.size >= MIN_PIXELS else None
    pool = _helper() if plan is not None else None
    if plan is None or pool is None:
        return np.asarray(Image.fromarray(image, mode="L").resize(size, Image.BILINEAR,
                                                                  reducing_gap=reducing_gap))
    top = pool.submit(_reduce, image[:plan.split_row], plan)
    bottom = _reduce(image[plan.split_row:], plan)
    reduced = Image.fromarray(np.concatenate([top.result(), bottom]), mode="L")
    out_w, out_h = size
    left = pool.submit(_resize, reduced, (plan.split_col, out_h), (0.0, 0.0, plan.split_x, plan.box_h))
    right = _resize(reduced, (out_w - plan.split_col, out_h), (plan.split_x, 0.0, plan.box_w, plan.box_h))
    return np.concatenate([left.result(), right], axis=1)


def _reduce(band: np.ndarray, plan: SplitPlan) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(band), mode="L").reduce((plan.fx, plan.fy)))


def _resize(image: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]
            ) -> np.ndarray:
    return np.asarray(image.resize(size, Image.BILINEAR, box=box))
