"""How well a model's orientation reference tells the eight mirror/quarter-turn views of films apart.

Usage: python benchmarks/orientation/measure.py DATA_DIR SPLIT [MODEL]
Each film of the split is shown in all eight orientations (numpy flips and rot90: exact pixel
copies) and checked; prints the share found right, the smallest and 1st-percentile margin of the
right orientation over the best wrong one, and the winning correlation's spread. Then, on every
5th film, the first stage's mean landmark confidence on the seven wrong views (films never turned)
against the upright view: the evidence that confirms a turn in detection.
"""
from __future__ import annotations

import sys

import numpy as np

from edgeld.data import load_grayscale, open_dataset
from edgeld.load import open_detector
from edgeld.runtime import LandmarkDetector
from edgeld.runtime.orientation import ALL_ORIENTATIONS


def main(data_dir: str, split: str, model: str = "isbi2015-student") -> None:
    detector = open_detector(model)
    right, margins, scores = 0, [], []
    samples = open_dataset(data_dir).split(split)
    for sample in samples:
        film = load_grayscale(sample.path)
        for k, turn in enumerate(ALL_ORIENTATIONS):
            check = detector.check_orientation(np.ascontiguousarray(turn.apply(film)))
            right += check.orientation == turn
            margins.append(check.scores[k] - max(np.delete(check.scores, k)))
            scores.append(check.score)
    n = len(samples) * len(ALL_ORIENTATIONS)
    print(f"{model} on {data_dir} {split}: {right}/{n} views found right; margin of the right "
          f"orientation min {min(margins):.3f}, 1st percentile {np.percentile(margins, 1):.3f}, "
          f"median {np.median(margins):.3f}; winning correlation min {min(scores):.3f}, "
          f"median {np.median(scores):.3f}")
    as_given = LandmarkDetector(runner=detector.runner, io=detector.io, correct_orientation=False,
                                check_quality=False)
    wrong, upright = [], []
    for sample in samples[::5]:
        film = load_grayscale(sample.path)
        upright.append(float(as_given.detect(film).confidence.mean()))
        wrong += [float(as_given.detect(np.ascontiguousarray(t.apply(film))).confidence.mean())
                  for t in ALL_ORIENTATIONS[1:]]
    print(f"first-stage mean confidence on {len(upright)} films: wrong views at most "
          f"{max(wrong):.2f} (median {np.median(wrong):.2f}), upright at least {min(upright):.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
