"""Time heatmap decoding (codec.decode_full) before and after the one-gather window, interleaved
in one process: the codec of commit 91f27b9 (read with `git show`) against the current one, on
the shipped shapes (student: 19 maps of 96x80; refiner: 19 maps of 16x16), random float32 logits.

    taskset -c 0,1 python benchmarks/decode/decode_time.py --json benchmarks/decode/decode-time.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeld.core.codec import SoftmaxHeatmapCodec

BEFORE = "91f27b9"


def load_codec_at(commit: str):
    """The SoftmaxHeatmapCodec class of `commit`, imported from a temporary copy of its file."""
    source = subprocess.run(["git", "show", f"{commit}:edgeld/core/codec.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "codec_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("codec_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["codec_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.SoftmaxHeatmapCodec


def p50_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    before = load_codec_at(BEFORE)
    rng = np.random.default_rng(0)
    shapes = {"student (19 x 96x80)": ((384, 320), (1, 19, 96, 80)),
              "refiner (19 x 16x16)": ((64, 64), (1, 19, 16, 16))}
    results = {}
    for name, (hw, shape) in shapes.items():
        logits = rng.normal(scale=3.0, size=shape).astype(np.float32)
        arms = {"before (parabola)": before(hw, 4, 1.5), "now, parabola": SoftmaxHeatmapCodec(hw, 4, 1.5),
                "now, soft-argmax radius 4": SoftmaxHeatmapCodec(hw, 4, 1.5, 4)}
        rounds = {arm: [] for arm in arms}
        for _ in range(args.rounds):  # interleaved, so drift on a shared VM hits every arm alike
            for arm, codec in arms.items():
                for _ in range(20):
                    codec.decode_full(logits)
                rounds[arm].append(p50_ms(lambda: codec.decode_full(logits), args.runs))
        results[name] = {arm: {"p50_ms_median_of_rounds": float(np.median(v)),
                               "p50_ms_rounds": [round(x, 4) for x in v]} for arm, v in rounds.items()}
        for arm, v in results[name].items():
            print(f"{name:<22} {arm:<28} {v['p50_ms_median_of_rounds']:.3f} ms")
    if args.json:
        record = {"machine": platform.processor() or platform.machine(), "before_commit": BEFORE,
                  "runs": args.runs, "rounds": args.rounds, "results": results}
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
