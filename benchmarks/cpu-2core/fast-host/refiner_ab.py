"""INT8 against FP32 refiner behind the INT8 student, decoded film -> mm, interleaved in one
process (rounds alternate the two cascades), batch 1, p50 per round and the median of rounds.

    taskset -c 0,1 python benchmarks/cpu-2core/fast-host/refiner_ab.py > benchmarks/cpu-2core/fast-host/refiner_ab.txt
"""
from __future__ import annotations

import time

import numpy as np

from edgeld.bench.harness import sample_film
from edgeld.runtime import LandmarkDetector

STUDENT = "out/student.int8-cpu.onnx"
REFINERS = {"INT8 refiner": "out/refiner.int8-cpu.onnx", "FP32 refiner": "out/isbi2015-refiner.onnx"}


def main(rounds: int = 8, runs: int = 40) -> None:
    film = sample_film()
    cascades = {name: LandmarkDetector(STUDENT, threads=2, refiner=LandmarkDetector(path, threads=2))
                for name, path in REFINERS.items()}
    p50s: dict[str, list[float]] = {name: [] for name in cascades}
    for _ in range(rounds):
        for name, cascade in cascades.items():
            for _ in range(5):  # warm this cascade's sessions after the other's
                cascade.detect(film, 0.1)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                cascade.detect(film, 0.1)
                times.append((time.perf_counter() - t0) * 1e3)
            p50s[name].append(float(np.median(times)))
    print(f"{STUDENT} + refiner, {rounds} rounds x {runs} runs, p50 per round (ms):")
    for name, values in p50s.items():
        print(f"  {name}: {' '.join(f'{v:.2f}' for v in values)}; median {np.median(values):.2f}")


if __name__ == "__main__":
    main()
