"""What folding the input normalisation into the ONNX graph (uint8 input) could save: the time of
the letterbox's float steps (uint8 -> float32 in [0, 1], the padding copy, (x - mean) / std) on
one film, next to the Pillow resize that comes before them. Batch 1, p50 of interleaved runs.

    taskset -c 0,1 python benchmarks/cpu-2core/pipeline-ab/normalise_cost.py [FILM] [--runs 300]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from edgeld.core.letterbox import Letterbox, normalize
from edgeld.data.images import load_grayscale
from edgeld.model_ref import resolve_model

DEFAULT_FILM = "../shared/data/isbi2015/images/151.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("film", nargs="?", default=DEFAULT_FILM)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    io = resolve_model("isbi2015-student").io
    film = load_grayscale(args.film)
    box = Letterbox.fit(film.shape, (io.input_height, io.input_width))
    size = (box.resized_w, box.resized_h)
    resized = np.asarray(Image.fromarray(film, mode="L").resize(size, Image.BILINEAR,
                                                                reducing_gap=io.input.reducing_gap))

    def to_float() -> np.ndarray:
        return np.asarray(resized, dtype=np.float32) * np.float32(1.0 / 255.0)

    unit = to_float()

    def pad() -> np.ndarray:
        out = np.zeros((io.input_height, io.input_width), dtype=np.float32)
        out[box.pad_top:box.pad_top + box.resized_h, box.pad_left:box.pad_left + box.resized_w] = unit
        return out

    padded = pad()
    steps = {
        "Pillow resize (uint8)": lambda: Image.fromarray(film, mode="L").resize(
            size, Image.BILINEAR, reducing_gap=io.input.reducing_gap),
        "uint8 -> float32 [0, 1]": to_float,
        "padding copy": pad,
        "(x - mean) / std": lambda: normalize(padded, io.mean, io.std),
        "whole letterbox + normalisation": lambda: normalize(box.apply(film, io.input.reducing_gap),
                                                             io.mean, io.std),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(20):  # warm-up
        for step in steps.values():
            step()
    for _ in range(args.runs):  # interleaved
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - t0) * 1e3)
    print(f"{args.film} {film.shape[1]}x{film.shape[0]} -> {io.input_width}x{io.input_height}, "
          f"{args.runs} interleaved runs, p50:")
    for name, t in times.items():
        print(f"  {name:34s} {np.median(t):6.3f} ms")
    floats = sum(np.median(times[n]) for n in ("uint8 -> float32 [0, 1]", "padding copy",
                                                "(x - mean) / std"))
    print(f"  float steps a uint8-input graph would skip: {floats:.3f} ms")


if __name__ == "__main__":
    main()
