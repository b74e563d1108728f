"""Would matching each film's intensity histogram to the training films' undo exposure changes?
(accuracy issue: films from other devices)

Each film's grey-level quantile function (256 levels, from every 4th pixel) is moved toward the
training films': all the way to their mean quantile function ("match"), or only into the band
between their p-th and (100-p)-th percentiles ("band p"; a film inside the band is untouched),
through a lookup table applied to the whole film before the cascade. Scored on the changes of
accuracy_under_change.py (test1, senior, shipped cascade, spacing given).

    python benchmarks/orientation/intensity_match.py ../shared/data/isbi2015 --every 3
"""
from __future__ import annotations

import argparse

import numpy as np

from accuracy_under_change import CHANGES, change_film
from edgeld.data import load_grayscale, open_dataset
from edgeld.load import open_detector
from edgeld.metrics import radial_errors_mm

LEVELS = (np.arange(256) + 0.5) / 256


def histogram(film: np.ndarray) -> np.ndarray:
    """Normalised 256-bin histogram of an 8-bit film, from every 4th pixel of every 4th row."""
    counts = np.bincount(film[::4, ::4].ravel(), minlength=256).astype(np.float64)
    return counts / counts.sum()


def quantiles(hist: np.ndarray) -> np.ndarray:
    """The grey level at each of the 256 quantile levels."""
    return np.searchsorted(np.cumsum(hist), LEVELS).astype(np.float64)


def lookup(hist: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The 8-bit table moving the film's quantile function into [low, high] per level; the
    identity when it lies inside."""
    q = quantiles(hist)
    correction = np.clip(q, low, high) - q
    rank = np.cumsum(hist) - hist / 2  # each grey level's mid-rank
    return np.clip(np.round(np.arange(256) + np.interp(rank, LEVELS, correction)), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--every", type=int, default=1, help="every Nth test1 film")
    args = parser.parse_args()
    dataset = open_dataset(args.data)
    train_q = np.array([quantiles(histogram(load_grayscale(s.path))) for s in dataset.split("train")])
    modes = {"as given": None, "match": (train_q.mean(0),) * 2}
    for p in (10, 25):
        modes[f"band {p}"] = (np.percentile(train_q, p, axis=0), np.percentile(train_q, 100 - p, axis=0))
    detector = open_detector("isbi2015-student", refiner=["isbi2015-refiner"], threads=2)
    samples = dataset.split("test1")[::args.every]
    print(f"shipped cascade, {len(samples)} test1 films, senior; MRE in mm (films changed by the table)")
    print("| change | " + " | ".join(modes) + " |\n|---|" + "---:|" * len(modes))
    for name in CHANGES:
        errors = {mode: [] for mode in modes}
        changed = {mode: 0 for mode in modes}
        for i, sample in enumerate(samples):
            film = change_film(name, load_grayscale(sample.path), np.random.default_rng(i))
            hist = histogram(film.image)
            for mode, band in modes.items():
                table = lookup(hist, *band) if band is not None else None
                image = film.image
                if table is not None and not np.array_equal(table, np.arange(256)):
                    image, changed[mode] = table[film.image], changed[mode] + 1
                found = detector.detect(image, film.spacing(sample.spacing_mm))
                errors[mode].append(radial_errors_mm(film.to_film(found.landmarks_px)[None],
                                                     sample.reference("senior")[None],
                                                     sample.spacing_mm)[0])
        print(f"| {name} | " + " | ".join(
            f"{np.mean(errors[m]):.3f}" + (f" ({changed[m]})" if modes[m] is not None else "")
            for m in modes) + " |", flush=True)


if __name__ == "__main__":
    main()
