"""The orientation check with its eight oriented templates made per film (before c03584e) against
made once per reference (now), INT8 student alone, decoded film -> mm, interleaved in one process
(order alternating), batch 1, p50 per round and the median of rounds.

    taskset -c 0,1 python benchmarks/cpu-2core/fast-host/thumbnail-matrices/templates_ab.py \\
        > benchmarks/cpu-2core/fast-host/thumbnail-matrices/templates_ab.txt
"""
from __future__ import annotations

import time

import numpy as np

from edgeld.bench.harness import sample_film
from edgeld.runtime import LandmarkDetector
from edgeld.runtime.orientation import ALL_ORIENTATIONS, OrientationCheck, OrientationReference

STUDENT = "out/student.int8-cpu.onnx"
ONCE = OrientationReference.check


def per_film(self: OrientationReference, thumb: np.ndarray) -> OrientationCheck:
    """`OrientationReference.check` as it was before c03584e: each view of the template per call."""
    scores = np.array([float(np.sum(thumb * o.apply(self.template))) for o in ALL_ORIENTATIONS])
    best = int(np.argmax(scores))
    if scores[best] - scores[0] < self.min_margin or scores[best] < self.min_score:
        best = 0
    return OrientationCheck(ALL_ORIENTATIONS[best], float(scores[best]), tuple(scores.tolist()))


ARMS = {"per film": per_film, "once": ONCE}


def main(rounds: int = 10, runs: int = 40) -> None:
    film, detector = sample_film(), LandmarkDetector(STUDENT, threads=2)
    values: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for r in range(rounds):
        for arm in (list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]):
            OrientationReference.check = ARMS[arm]
            for _ in range(5):
                detector.detect(film, 0.1)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                detector.detect(film, 0.1)
                times.append((time.perf_counter() - t0) * 1e3)
            values[arm].append(float(np.median(times)))
    OrientationReference.check = ONCE
    print(f"INT8 student alone ({STUDENT}), {rounds} rounds x {runs} runs, decoded film -> mm, p50 per round (ms):")
    for arm, v in values.items():
        print(f"  templates {arm:<9} {' '.join(f'{x:.2f}' for x in v)}; median {np.median(v):.2f}")
    gain = np.array(values["per film"]) - np.array(values["once"])
    print(f"  paired by round, per film - once: median {np.median(gain):.3f} ms, "
          f"range {gain.min():.2f} to {gain.max():.2f}")


if __name__ == "__main__":
    main()
