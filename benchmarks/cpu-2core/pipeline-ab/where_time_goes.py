"""Where the INT8 student's end-to-end time goes (decoded image -> landmarks in mm), by step:
cProfile cumulative time per call of the steps the detector runs, beside the plain p50. With
--refiner, the cascade's, the refiner's steps listed too.

    taskset -c 0,1 python benchmarks/cpu-2core/pipeline-ab/where_time_goes.py --model out/student.int8-cpu.onnx
    taskset -c 0,1 python benchmarks/cpu-2core/pipeline-ab/where_time_goes.py --refiner out/refiner.int8-cpu.onnx
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

import numpy as np

from edgeld.data import load_grayscale
from edgeld.runtime import LandmarkDetector

ROOT = Path(__file__).resolve().parents[3]
# (label, file suffix, function name) of the steps reported
STEPS = (("network (ONNX Runtime run)", "onnxruntime_inference_collection.py", "run"),
         ("letterbox (preprocess)", "letterbox.py", "preprocess"),
         ("heatmap decoding", "codec.py", "decode_full"),
         ("orientation thumbnail", "orientation.py", "thumbnail"),
         ("far-from-peak mass (uncertainty)", "uncertainty.py", "far_mass"))
# the refiner's, with --refiner: its whole stage, then the steps inside it
REFINER_STEPS = (("refiner stage (_refine)", "detector.py", "_refine"),
                 ("  patches (patches_around)", "patches.py", "patches_around"),
                 ("  maps (patches + network)", "detector.py", "patch_maps"),
                 ("  decoding", "detector.py", "decode"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "out" / "student.int8-cpu.onnx"))
    parser.add_argument("--image", default=str(ROOT / "edgeld" / "samples" / "isbi2015-demo" / "images" / "151.jpg"))
    parser.add_argument("--refiner", default=None, help="a refiner artifact: profile the cascade")
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    film = load_grayscale(args.image)
    refiner = LandmarkDetector(args.refiner, threads=2) if args.refiner else None
    detector = LandmarkDetector(args.model, threads=2, refiner=refiner)
    for _ in range(20):
        detector.detect(film, 0.1)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        detector.detect(film, 0.1)
        times.append((time.perf_counter() - t0) * 1e3)
    name = Path(args.model).name + (f" + {Path(args.refiner).name}" if args.refiner else "")
    print(f"{name}, end to end p50 {np.median(times):.2f} ms ({args.runs} runs)")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.runs):
        detector.detect(film, 0.1)
    profile.disable()
    stats = pstats.Stats(profile).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    total = sum(v[2] for v in stats.values()) * 1e3 / args.runs
    print(f"under cProfile: {total:.2f} ms per call; cumulative per call:")
    for label, suffix, name in STEPS + (REFINER_STEPS if refiner else ()):
        ms = sum(v[3] for (f, _, n), v in stats.items() if f.endswith(suffix) and n == name)
        if refiner and name == "run":
            label = "networks, both stages (ORT run)"
        print(f"  {label:<34} {ms * 1e3 / args.runs:6.2f} ms")


if __name__ == "__main__":
    main()
