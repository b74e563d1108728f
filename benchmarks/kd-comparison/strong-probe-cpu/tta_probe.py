"""Test-time augmentation of the deployed first stage: does averaging the student's landmarks over
shifted copies of the film take the cascade's gross misses down? (accuracy issue, item 1)

Each film goes through the student as given and shifted by half a heatmap cell (in the film's own
pixels) right, down and both, or as given and inside borders of 5% and 10% (the network sees it
smaller); the points are mapped back and averaged (mean or median), and the refiner refines the
averaged points as the runtime does. One pass reproduces the shipped cascade.

    python benchmarks/kd-comparison/strong-probe-cpu/tta_probe.py ../shared/data/isbi2015 \
        --split test1 [--model isbi2015-student --refiner isbi2015-refiner]
"""
from __future__ import annotations

import argparse

import numpy as np

from edgeld.data.datasets import open_dataset
from edgeld.data.images import load_grayscale
from edgeld.load import open_detector
from edgeld.metrics import radial_errors_mm


def shifted(film: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The film moved right by dx and down by dy pixels, its edge rows and columns repeated."""
    padded = np.pad(film, ((dy, 0), (dx, 0)), mode="edge")
    return padded[:film.shape[0], :film.shape[1]]


def padded(film: np.ndarray, fraction: float) -> tuple[np.ndarray, int, int]:
    """The film inside a border of `fraction` of its size on every side (edges repeated): the
    network sees it smaller. Returns the padded film and the border (x, y) in pixels."""
    by, bx = int(round(film.shape[0] * fraction)), int(round(film.shape[1] * fraction))
    return np.pad(film, ((by, by), (bx, bx)), mode="edge"), bx, by


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--split", default="test1")
    parser.add_argument("--model", default="isbi2015-student")
    parser.add_argument("--refiner", default="isbi2015-refiner")
    parser.add_argument("--count", type=int, default=None, help="only the split's first N films")
    args = parser.parse_args()
    dataset = open_dataset(args.data)
    samples = dataset.split(args.split)[:args.count]
    student = open_detector(args.model)
    refiner = open_detector(args.refiner)  # used through refine(): the runtime's patch path
    # half a heatmap cell in the film's pixels (ISBI: 2400x1935 -> 384x320, stride 4: ~12.5 px)
    io = student.io
    errors: dict[str, list[np.ndarray]] = {"1 pass": [], "4 passes, mean": [],
                                           "4 passes, median": [],
                                           "3 zooms (border 0, 5, 10%), median": []}
    for sample in samples:
        film = load_grayscale(sample.path)
        scale = max(film.shape[0] / io.input_height, film.shape[1] / io.input_width)
        half = int(round(io.heatmap_stride * scale / 2))
        shifts = [(0, 0), (half, 0), (0, half), (half, half)]
        passes = []
        for dx, dy in shifts:
            found = student.detect(shifted(film, dx, dy)).landmarks_px
            passes.append(found - np.array([dx, dy], dtype=found.dtype))
        passes = np.stack(passes)
        zooms = [passes[0]]
        for fraction in (0.05, 0.1):
            big, bx, by = padded(film, fraction)
            found = student.detect(big).landmarks_px
            zooms.append(found - np.array([bx, by], dtype=found.dtype))
        zooms = np.stack(zooms)
        truth = sample.reference("senior")
        for name, points in (("1 pass", passes[0]), ("4 passes, mean", passes.mean(axis=0)),
                             ("4 passes, median", np.median(passes, axis=0)),
                             ("3 zooms (border 0, 5, 10%), median", np.median(zooms, axis=0))):
            refined, _ = refiner.refine(film, points)
            errors[name].append(radial_errors_mm(refined[None], truth[None], sample.spacing_mm)[0])
    names = list(io.landmarks)
    for name, per_film in errors.items():
        e = np.stack(per_film)
        far = e > 4.0
        share = {names[k]: far[:, k].sum() / far.sum() for k in range(len(names))}
        top = sorted(share.items(), key=lambda kv: -kv[1])[:3]
        print(f"{name}: cascade MRE {e.mean():.3f} mm, SDR@2mm {(e <= 2).mean():.1%}, "
              f"> 4 mm {far.mean():.1%} (of those: {', '.join(f'{n} {s:.0%}' for n, s in top)})")


if __name__ == "__main__":
    main()
