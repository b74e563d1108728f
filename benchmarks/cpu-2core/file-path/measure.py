"""File -> landmarks with the reduced-size JPEG decode (issue 12, item 2): JPEG decode at full size,
1/2 and 1/4 (libjpeg's DCT scaling through Pillow's draft), and a film file to landmarks through
the ONNX cascade and the student alone, full decode vs the reduced decode the chain allows.
Batch 1, one process, all cases interleaved round by round so drift hits each alike; p50 / p90 of
the pooled runs and the spread of the per-round medians.

Usage (ONNX artifacts from `edgeld export isbi2015-student --to onnx --out out/isbi2015-student.onnx`
and the same for isbi2015-refiner):

    python benchmarks/cpu-2core/file-path/measure.py [--student out/isbi2015-student.onnx]
        [--refiner out/isbi2015-refiner.onnx] [--image FILM.jpg] [--runs 30] [--rounds 5]
        [--threads 0] [--json benchmarks/cpu-2core/file-path/results.json]

Pin it to cores on a quiet machine for figures worth publishing (e.g. `taskset -c 0,1`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import PIL
from PIL import Image

from edgeld.data import load_grayscale
from edgeld.data.images import load_reduced
from edgeld.detect_file import detect_file
from edgeld.runtime import LandmarkDetector
from edgeld.runtime.reduced import max_reduction

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SAMPLE = ROOT / "edgeld" / "samples" / "isbi2015-demo" / "images" / "151.jpg"


def cases(student: LandmarkDetector, cascade: LandmarkDetector, film: Path) -> dict:
    """name -> a callable doing one file -> result, and what it is."""
    return {
        "decode full, RGB then converted (until 2026-12-03)": lambda: _decode_via_rgb(film),
        "decode full": lambda: load_grayscale(film),
        "decode 1/2 (draft)": lambda: load_reduced(film, lambda hw: 2),
        "decode 1/4 (draft)": lambda: load_reduced(film, lambda hw: 4),
        "cascade, full decode": lambda: cascade.detect(load_grayscale(film), 0.1),
        f"cascade, reduced decode (1/{max_reduction(cascade, _hw(film))})":
            lambda: detect_file(cascade, film, 0.1),
        "student, full decode": lambda: student.detect(load_grayscale(film), 0.1),
        f"student, reduced decode (1/{max_reduction(student, _hw(film))})":
            lambda: detect_file(student, film, 0.1),
    }


def _decode_via_rgb(film: Path) -> np.ndarray:
    """A full decode as `load_grayscale` did it before it asked libjpeg for luma alone."""
    with Image.open(film) as img:
        img.load()
        return np.asarray(img.convert("L"))


def _hw(film: Path) -> tuple[int, int]:
    with Image.open(film) as img:
        return img.height, img.width


def measure(todo: dict, runs: int, rounds: int) -> dict[str, dict]:
    for fn in todo.values():  # warm-up: sessions, arenas, page cache
        for _ in range(3):
            fn()
    times: dict[str, list[list[float]]] = {name: [] for name in todo}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for name, fn in todo.items():
            batch = []
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                batch.append((time.perf_counter() - t0) * 1e3)
            times[name].append(batch)
    out = {}
    for name, batches in times.items():
        pooled = np.concatenate(batches)
        medians = [float(np.median(b)) for b in batches]
        out[name] = {"p50_ms": float(np.median(pooled)), "p90_ms": float(np.percentile(pooled, 90)),
                     "round_medians_ms": medians, "runs": int(pooled.size)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", default=str(ROOT / "out" / "isbi2015-student.onnx"))
    parser.add_argument("--refiner", default=str(ROOT / "out" / "isbi2015-refiner.onnx"))
    parser.add_argument("--image", default=str(SAMPLE))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    parser.add_argument("--json", default=str(HERE / "results.json"))
    args = parser.parse_args()
    for path in (args.student, args.refiner):
        if not Path(path).is_file():
            raise SystemExit(f"{path} not found: make it with `edgeld export "
                             f"{Path(path).stem} --to onnx --out {path}`")
    film = Path(args.image)
    refiner = LandmarkDetector(args.refiner, threads=args.threads)
    cascade = LandmarkDetector(args.student, threads=args.threads, refiner=refiner)
    student = LandmarkDetector(args.student, threads=args.threads)
    results = measure(cases(student, cascade, film), args.runs, args.rounds)
    print(f"{film.name} ({_hw(film)[1]}x{_hw(film)[0]}), batch 1, {args.runs} runs in "
          f"{args.rounds} interleaved rounds")
    print("| case | p50 ms | p90 ms | round medians ms |")
    print("|---|---:|---:|---|")
    for name, r in results.items():
        spread = ", ".join(f"{m:.1f}" for m in r["round_medians_ms"])
        print(f"| {name} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {spread} |")
    record = {"image": str(film), "student": args.student, "refiner": args.refiner,
              "threads": args.threads, "runs": args.runs, "rounds": args.rounds,
              "machine": {"cpu": platform.processor() or platform.machine(),
                          "cores": os.cpu_count(), "python": platform.python_version(),
                          "onnxruntime": ort.__version__, "pillow": PIL.__version__,
                          "load_average": os.getloadavg()},
              "results": results}
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
