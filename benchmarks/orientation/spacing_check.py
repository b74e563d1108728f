"""How often the shipped cascade says a film's stated pixel spacing contradicts its anatomy
(edgeld/runtime/spacing.py: contradicted_spacing), on films stated right and stated wrong.

Usage: python benchmarks/orientation/spacing_check.py DATA_DIR [--split test1] [--json OUT.json]

Cases, each over every film of the split:
- as given, stated at the dataset's spacing (the truth): every flag here is a false alarm;
- as given, stated at twice it (a header off by a factor of 2);
- at half resolution, stated at the dataset's spacing (an export resized, its old header kept);
- at half resolution, stated at its true spacing (twice the dataset's).
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image
from tqdm import tqdm

from edgeld.core.files import atomic_write_json
from edgeld.data import load_grayscale, open_dataset
from edgeld.load import open_detector


def half(film: np.ndarray) -> np.ndarray:
    """The film at half resolution, as a device exporting 2x-binned pixels would give it."""
    return np.asarray(Image.fromarray(film).resize((film.shape[1] // 2, film.shape[0] // 2),
                                                   Image.BILINEAR, reducing_gap=3.0))


CASES = {  # name -> (film -> image, true spacing -> stated spacing)
    "as given, stated right": (lambda f: f, lambda s: s),
    "as given, stated 2x": (lambda f: f, lambda s: (2 * s[0], 2 * s[1])),
    "half resolution, old header": (half, lambda s: s),
    "half resolution, stated right": (half, lambda s: (2 * s[0], 2 * s[1])),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--split", default="test1")
    parser.add_argument("--student", default="isbi2015-student")
    parser.add_argument("--refiner", default="isbi2015-refiner")
    parser.add_argument("--json")
    args = parser.parse_args()
    samples = open_dataset(args.data).split(args.split)
    cascade = open_detector(args.student, threads=2, refiner=args.refiner)
    implied: dict[str, list[float | None]] = {name: [] for name in CASES}
    for sample in tqdm(samples, desc="films", unit="film"):
        film = load_grayscale(sample.path)
        for name, (image_of, stated_of) in CASES.items():
            found = cascade.detect(image_of(film), stated_of(sample.spacing_mm))
            implied[name].append(found.anatomy_spacing_mm)
    record = {"split": args.split, "films": len(samples), "cases": {}}
    for name, values in implied.items():
        flagged = [v for v in values if v is not None]
        record["cases"][name] = {"flagged": len(flagged),
                                 "implied_mm": [round(min(flagged), 4), round(max(flagged), 4)]
                                 if flagged else None}
        span = f", anatomy says {min(flagged):.3f}-{max(flagged):.3f} mm" if flagged else ""
        print(f"{name:32s} flagged {len(flagged):3d} of {len(values)}{span}")
    if args.json:
        atomic_write_json(args.json, record)


if __name__ == "__main__":
    main()
