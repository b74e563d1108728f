"""The 2026-12-02 preprocessing changes against what they replaced, interleaved in one process on
one film, so that a noisy VM's drift hits both alike (issue 12, items 1 and 2):

- letterbox: Pillow's resize at reducing_gap 3.0 (the contract of models made before) vs 1.5;
- refiner patches: reduce the whole film 2x, then Pillow's affine transform per patch (before) vs
  windows reduced on their own and float32 numpy sampling (now);
- the INT8 cascade, decoded image -> landmarks in mm, with each pair of those (the artifacts'
  networks are the same; only the preprocessing differs).

    python benchmarks/cpu-2core/pipeline-ab/measure.py --student out/student.int8-cpu.onnx \
        --refiner out/refiner.int8-cpu.onnx --runs 200 --json benchmarks/cpu-2core/pipeline-ab/results.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

import edgeld.runtime.patches as patches
from edgeld.core.letterbox import Letterbox, normalize
from edgeld.data import load_grayscale
from edgeld.runtime import LandmarkDetector

ROOT = Path(__file__).resolve().parents[3]


def patches_before(image, points_src, spec, mean, std):
    """The refiner's patches as cut until 2026-12-02 (whole-film reduce, Pillow transform)."""
    centres = spec.source_to_reduced(points_src)
    reduced = patches.reduce_image(image, spec.factor)
    scale = 1.0 / 255.0 if reduced.mode == "L" else 1.0
    out = np.empty((len(centres), 1, spec.size, spec.size), dtype=np.float32)
    for i, (ox, oy) in enumerate(spec.patch_origin(centres)):
        patch = reduced.transform((spec.size, spec.size), Image.AFFINE,
                                  data=(1.0, 0.0, float(ox), 0.0, 1.0, float(oy)),
                                  resample=Image.BILINEAR, fillcolor=0)
        out[i, 0] = np.asarray(patch, dtype=np.float32) * scale
    return normalize(out, mean, std), centres


def timed(fn, runs_per_round: int) -> list[float]:
    out = []
    for _ in range(runs_per_round):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", default=str(ROOT / "out" / "student.int8-cpu.onnx"))
    parser.add_argument("--refiner", default=str(ROOT / "out" / "refiner.int8-cpu.onnx"))
    parser.add_argument("--image", default=str(ROOT / "edgeld" / "samples" / "isbi2015-demo" / "images" / "151.jpg"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    film = load_grayscale(args.image)
    refiner = LandmarkDetector(args.refiner, threads=2)
    cascade = LandmarkDetector(args.student, threads=2, refiner=refiner)
    gap_now = cascade.io.input.reducing_gap
    box = Letterbox.fit(film.shape, (cascade.io.input_height, cascade.io.input_width))
    points = cascade.detect(film).landmarks_px
    spec = patches.PatchSpec(refiner.io.patch_size, refiner.io.patch_factor)
    now_patches = patches.patches_around

    def cascade_before():
        cascade.io = replace(cascade.io, input=replace(cascade.io.input, reducing_gap=3.0))
        patches.patches_around = patches_before
        try:
            return cascade.detect(film, 0.1)
        finally:
            patches.patches_around = now_patches
            cascade.io = replace(cascade.io, input=replace(cascade.io.input, reducing_gap=gap_now))

    cases = {
        "letterbox, reducing_gap 3.0 (before)": lambda: box.apply(film, 3.0),
        f"letterbox, reducing_gap {gap_now:g} (now)": lambda: box.apply(film, gap_now),
        "19 refiner patches (before)": lambda: patches_before(film, points, spec, 0.5, 0.25),
        "19 refiner patches (now)": lambda: now_patches(film, points, spec, 0.5, 0.25),
        "INT8 cascade, decoded image -> mm (before)": cascade_before,
        "INT8 cascade, decoded image -> mm (now)": lambda: cascade.detect(film, 0.1),
    }
    for fn in cases.values():
        timed(fn, 5)
    times = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            times[name] += timed(fn, max(1, args.runs // args.rounds))
    results = {name: {"p50_ms": float(np.median(t)), "p10_ms": float(np.percentile(t, 10)),
                      "p90_ms": float(np.percentile(t, 90)), "runs": len(t)} for name, t in times.items()}
    print(f"{Path(args.image).name}, {args.runs} runs each in {args.rounds} interleaved rounds, "
          f"ONNX Runtime 2 threads; load average {os.getloadavg()[0]:.2f}")
    print("| step | p10 ms | p50 ms | p90 ms |\n|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['p10_ms']:.2f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} |")
    if args.json:
        record = {"image": args.image, "student": args.student, "refiner": args.refiner,
                  "machine": {"processor": platform.processor() or platform.machine(),
                              "cpus": os.cpu_count(), "load_average": os.getloadavg()},
                  "results": results}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
