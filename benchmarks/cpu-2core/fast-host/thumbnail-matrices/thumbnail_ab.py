"""The orientation thumbnail through Pillow (before bafc712) against the one made as two matrix
products (edgeld/core/resample.py at bafc712), decoded film -> mm, interleaved in one process: each round runs
both arms on the same detectors, the order alternating, batch 1, p50 per round and the median of
rounds, for the INT8 student alone and the INT8 cascade.

Runs at bafc712, the commit with the matrix thumbnail (c03584e reverted it), from the repository root:

    git checkout bafc712 -- edgeld    # that commit's runtime; after: `git checkout HEAD -- edgeld; rm edgeld/core/resample.py`
    taskset -c 0,1 python benchmarks/cpu-2core/fast-host/thumbnail-matrices/thumbnail_ab.py > thumbnail_ab.txt
    OPENBLAS_NUM_THREADS=1 taskset -c 0,1 python benchmarks/cpu-2core/fast-host/thumbnail-matrices/thumbnail_ab.py \
        > thumbnail_ab-openblas1.txt
"""
from __future__ import annotations

import time

import numpy as np

import edgeld.runtime.detector as detector_module
from edgeld.bench.harness import sample_film
from edgeld.core.letterbox import REDUCING_GAP, Letterbox
from edgeld.runtime import LandmarkDetector

STUDENT, REFINER = "out/student.int8-cpu.onnx", "out/refiner.int8-cpu.onnx"
MATRICES = detector_module.thumbnail


def pillow_thumbnail(model_input: np.ndarray, box: Letterbox, size: int = 48) -> np.ndarray:
    """The thumbnail as the runtime made it before bafc712: the film letterboxed into a square by
    Pillow (Letterbox.apply on a float image), then centred and normalised."""
    film = model_input[0, box.pad_top:box.pad_top + box.resized_h,
                       box.pad_left:box.pad_left + box.resized_w]
    fit = Letterbox.fit(film.shape, (size, size))
    square = fit.apply(film.astype(np.float32), REDUCING_GAP)
    inside = square[fit.pad_top:fit.pad_top + fit.resized_h, fit.pad_left:fit.pad_left + fit.resized_w]
    centred = np.zeros_like(square)
    centred[fit.pad_top:fit.pad_top + fit.resized_h,
            fit.pad_left:fit.pad_left + fit.resized_w] = inside - inside.mean()
    norm = float(np.linalg.norm(centred))
    return centred / norm if norm > 0 else centred


ARMS = {"Pillow thumbnail": pillow_thumbnail, "matrix thumbnail": MATRICES}


def p50(detector: LandmarkDetector, film: np.ndarray, runs: int) -> float:
    for _ in range(5):  # warm after the other arm
        detector.detect(film, 0.1)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        detector.detect(film, 0.1)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main(rounds: int = 10, runs: int = 40) -> None:
    film = sample_film()
    chains = {"INT8 student alone": LandmarkDetector(STUDENT, threads=2),
              "INT8 cascade": LandmarkDetector(STUDENT, threads=2, refiner=LandmarkDetector(REFINER, threads=2))}
    for chain, detector in chains.items():
        values: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for r in range(rounds):
            for arm in (list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]):
                detector_module.thumbnail = ARMS[arm]
                values[arm].append(p50(detector, film, runs))
        detector_module.thumbnail = MATRICES
        print(f"{chain} ({STUDENT}{' + ' + REFINER if detector.refiner else ''}), "
              f"{rounds} rounds x {runs} runs, decoded film -> mm, p50 per round (ms):")
        for arm, v in values.items():
            print(f"  {arm:<17} {' '.join(f'{x:.2f}' for x in v)}; median {np.median(v):.2f}")
        gain = np.array(values["Pillow thumbnail"]) - np.array(values["matrix thumbnail"])
        print(f"  paired by round, Pillow - matrix: median {np.median(gain):.2f} ms, "
              f"range {gain.min():.2f} to {gain.max():.2f}")


if __name__ == "__main__":
    main()
