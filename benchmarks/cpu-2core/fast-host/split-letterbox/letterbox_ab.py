"""The letterbox's 8-bit resize on one thread against two (edgeld/core/parallel_resize.py),
decoded film -> mm, interleaved in one process: each round runs both arms on the same detectors,
the order alternating, batch 1, p50 per round and the median of rounds, for the INT8 student alone
and the INT8 cascade; then the letterbox alone the same way.

    taskset -c 0,1 python benchmarks/cpu-2core/fast-host/split-letterbox/letterbox_ab.py \\
        > benchmarks/cpu-2core/fast-host/split-letterbox/letterbox_ab.txt
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

import edgeld.core.parallel_resize as parallel_resize
from edgeld.bench.harness import sample_film
from edgeld.runtime import LandmarkDetector

STUDENT, REFINER = "out/student.int8-cpu.onnx", "out/refiner.int8-cpu.onnx"
ARMS = {"one thread": 10 ** 12, "two threads": parallel_resize.MIN_PIXELS}  # MIN_PIXELS per arm


def p50(call: Callable[[], object], runs: int) -> float:
    for _ in range(5):  # warm after the other arm
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main(rounds: int = 10, runs: int = 40) -> None:
    film = sample_film()
    student = LandmarkDetector(STUDENT, threads=2)
    cascade = LandmarkDetector(STUDENT, threads=2, refiner=LandmarkDetector(REFINER, threads=2))
    chains = {f"INT8 student alone ({STUDENT})": lambda: student.detect(film, 0.1),
              f"INT8 cascade ({STUDENT} + {REFINER})": lambda: cascade.detect(film, 0.1),
              "letterbox alone (preprocess)": lambda: student.preprocess(film)}
    for chain, call in chains.items():
        values: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for r in range(rounds):
            for arm in (list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]):
                parallel_resize.MIN_PIXELS = ARMS[arm]
                values[arm].append(p50(call, runs))
        parallel_resize.MIN_PIXELS = ARMS["two threads"]
        print(f"{chain}, {rounds} rounds x {runs} runs, decoded film, p50 per round (ms):")
        for arm, v in values.items():
            print(f"  {arm:<12} {' '.join(f'{x:.2f}' for x in v)}; median {np.median(v):.2f}")
        gain = np.array(values["one thread"]) - np.array(values["two threads"])
        print(f"  paired by round, one - two threads: median {np.median(gain):.2f} ms, "
              f"range {gain.min():.2f} to {gain.max():.2f}")


if __name__ == "__main__":
    main()
