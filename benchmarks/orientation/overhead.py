"""What the orientation and usability checks cost per image: end-to-end detection (decoded image
in, landmarks out) with and without them, interleaved in one process so drift hits both alike.

Usage: python benchmarks/orientation/overhead.py MODEL.onnx IMAGE [--runs N] [--threads T]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from edgeld.data import load_grayscale
from edgeld.runtime import LandmarkDetector


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("image")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    film = load_grayscale(args.image)
    checked = LandmarkDetector(args.model, threads=args.threads)
    plain = LandmarkDetector(runner=checked.runner, io=checked.io, correct_orientation=False,
                             check_quality=False)
    times: dict[str, list[float]] = {"with checks": [], "without": []}
    for detector in (checked, plain):  # warm-up
        for _ in range(10):
            detector.detect(film)
    for _ in range(args.runs):
        for name, detector in (("with checks", checked), ("without", plain)):
            t0 = time.perf_counter()
            detector.detect(film)
            times[name].append((time.perf_counter() - t0) * 1e3)
    p50 = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{args.model}, {args.runs} interleaved runs each, end-to-end p50: with checks "
          f"{p50['with checks']:.2f} ms, without {p50['without']:.2f} ms, "
          f"difference {p50['with checks'] - p50['without']:+.2f} ms")


if __name__ == "__main__":
    main()
