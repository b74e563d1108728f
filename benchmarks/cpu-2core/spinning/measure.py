"""Does letting ONNX Runtime's idle threads spin pay end to end? (latency issue, item 5)

The runtime turns spinning off (edgeld/runtime/runners.py): spinning threads keep the cores busy
between runs and once took them from the letterbox and the refiner stage (38 -> 30 ms for a
cascade, measured on another host). This measures that trade again: the same detector (student
alone, or student + refiner) with spinning off as shipped, on, and on inside runs only,
decoded image -> landmarks,
interleaved in rounds so drift hits each alike; p50 per round, then the median and range of the
rounds. Model-only times are printed beside, for the same sessions.

    taskset -c 0,1 python benchmarks/cpu-2core/spinning/measure.py \
        --student out/student.int8-cpu.onnx --refiner out/refiner.int8-cpu.onnx
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgeld.data import load_grayscale
from edgeld.runtime import LandmarkDetector

ROOT = Path(__file__).resolve().parents[3]


def spinning(detector: LandmarkDetector, stop_between_runs: bool = False) -> LandmarkDetector:
    """The detector's chain with every session rebuilt as the runtime builds it, but spinning;
    `stop_between_runs`: the threads spin only inside a run and stop as it returns
    (`session.force_spinning_stop`)."""
    stage = detector
    while stage is not None:
        runner = stage.runner
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = runner.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        if stop_between_runs:
            options.add_session_config_entry("session.force_spinning_stop", "1")
        runner.session = ort.InferenceSession(str(runner.path), options,
                                              providers=["CPUExecutionProvider"])
        runner.settings["allow_spinning"] = True
        runner.settings["force_spinning_stop"] = stop_between_runs
        stage = stage.refiner
    return detector


def open_pair(student: str, refiner: str | None, threads: int) -> dict[str, LandmarkDetector]:
    def make() -> LandmarkDetector:
        second = LandmarkDetector(refiner, threads=threads) if refiner else None
        return LandmarkDetector(student, threads=threads, refiner=second)
    return {"spinning off": make(), "spinning on": spinning(make()),
            "spinning inside runs": spinning(make(), stop_between_runs=True)}


def p50(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", default=str(ROOT / "out" / "student.int8-cpu.onnx"))
    parser.add_argument("--refiner", default=str(ROOT / "out" / "refiner.int8-cpu.onnx"))
    parser.add_argument("--image", default=str(ROOT / "edgeld" / "samples" / "isbi2015-demo" / "images" / "151.jpg"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    film = load_grayscale(args.image)
    for label, refiner in (("student alone", None), ("cascade", args.refiner)):
        pair = open_pair(args.student, refiner, args.threads)
        x = next(iter(pair.values())).preprocess(film)[0][None]
        end_to_end: dict[str, list[float]] = {k: [] for k in pair}
        model_only: dict[str, list[float]] = {k: [] for k in pair}
        for detector in pair.values():  # warm-up
            for _ in range(10):
                detector.detect(film, 0.1)
        for r in range(args.rounds):
            names = list(pair)
            for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order
                detector = pair[name]
                end_to_end[name].append(p50(lambda: detector.detect(film, 0.1), args.runs))
                model_only[name].append(p50(lambda: detector.runner.infer(x), args.runs))
        print(f"{label}: {Path(args.student).name}{' + ' + Path(refiner).name if refiner else ''}, "
              f"{args.threads} threads, {args.rounds} rounds x {args.runs} runs, p50 per round")
        for name in pair:
            e, m = np.array(end_to_end[name]), np.array(model_only[name])
            print(f"  {name:<24} end to end {np.median(e):6.2f} ms ({e.min():.2f}-{e.max():.2f})   "
                  f"first stage model only {np.median(m):5.2f} ms ({m.min():.2f}-{m.max():.2f})")


if __name__ == "__main__":
    main()
