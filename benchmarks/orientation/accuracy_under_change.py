"""How accurate the shipped cascade stays on films that look as another device or acquisition might
make them: test1 changed in exposure, contrast, noise, sharpness, resolution, histogram and border,
scored against the senior annotation moved with the pixels.

Usage: python benchmarks/orientation/accuracy_under_change.py DATA_DIR [MODEL] [--refiner R]
    [--split test1|val] [--every 1] [--no-spacing] [--only "CHANGE,..."] [--json OUT.json]
(--refiner "" : the first stage alone; --split val: MODEL's own validation films, for choosing a
recipe without test1)
Every change is seeded per film (numpy default_rng(film index)), so a rerun reads the same films.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from edgeld.core.files import atomic_write_json
from edgeld.data import load_grayscale, open_dataset
from edgeld.load import open_detector
from edgeld.metrics import radial_errors_mm
from edgeld.model_ref import resolve_model

# name -> change(image, rng) -> (changed image, resize factor, point offset (x, y)): a reference
# point p of the film lies at (p + 0.5) * factor - 0.5 + offset in the changed image (pixel centres
# at integers; the exact per-axis factors come from the rounded sizes)
Change = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, float, tuple[int, int]]]


@dataclass(frozen=True)
class ChangedFilm:
    """A film after one of CHANGES, with what maps it back: exact (x, y) resize factors (from the
    rounded size) and the offset (x, y) of its border."""

    image: np.ndarray
    factors: np.ndarray
    offset: np.ndarray

    def spacing(self, spacing_mm: tuple[float, float]) -> tuple[float, float]:
        """The changed film's own (row, column) spacing, as a device would state it."""
        return spacing_mm[0] / self.factors[1], spacing_mm[1] / self.factors[0]

    def to_film(self, points: np.ndarray) -> np.ndarray:
        """(K, 2) points of the changed film back into the film's pixels (centres at integers)."""
        return (points - self.offset + 0.5) / self.factors - 0.5


def change_film(name: str, film: np.ndarray, rng: np.random.Generator) -> ChangedFilm:
    """`film` changed by CHANGES[name]."""
    image, scale, offset = CHANGES[name](film, rng)
    factors = (np.array([image.shape[1] / film.shape[1], image.shape[0] / film.shape[0]])
               if scale != 1.0 else np.ones(2))
    return ChangedFilm(image, factors, np.array(offset, dtype=np.float64))


def _same(image: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
    return np.ascontiguousarray(image), 1.0, (0, 0)


CHANGES: dict[str, Change] = {
    "as given": lambda im, rng: _same(im),
    "gamma 0.5": lambda im, rng: _same((255 * (im / 255.0) ** 0.5).astype(np.uint8)),
    "gamma 2.0": lambda im, rng: _same((255 * (im / 255.0) ** 2.0).astype(np.uint8)),
    "contrast x0.5": lambda im, rng: _same(np.clip(im * 0.5 + 64, 0, 255).astype(np.uint8)),
    "noise sigma 10": lambda im, rng: _same(np.clip(im + rng.normal(0, 10, im.shape), 0, 255
                                                    ).astype(np.uint8)),
    "blur sigma 3 px": lambda im, rng: _same(np.asarray(Image.fromarray(im).filter(
        ImageFilter.GaussianBlur(3)))),
    "histogram equalised": lambda im, rng: _same(np.asarray(ImageOps.equalize(Image.fromarray(im)))),
    "half resolution": lambda im, rng: (np.asarray(Image.fromarray(im).resize(
        (im.shape[1] // 2, im.shape[0] // 2), Image.BILINEAR, reducing_gap=3.0)), 0.5, (0, 0)),
    "three-quarter resolution": lambda im, rng: (np.asarray(Image.fromarray(im).resize(
        (round(im.shape[1] * 0.75), round(im.shape[0] * 0.75)), Image.BILINEAR, reducing_gap=3.0)),
        0.75, (0, 0)),
    "10% black border": lambda im, rng: (np.pad(im, ((im.shape[0] // 10,) * 2, (im.shape[1] // 10,) * 2)),
                                         1.0, (im.shape[1] // 10, im.shape[0] // 10)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("model", nargs="?", default="isbi2015-student")
    parser.add_argument("--refiner", action="append", default=None)
    parser.add_argument("--split", default="test1",
                        help="a split, or val: the films MODEL held out of train for validation")
    parser.add_argument("--every", type=int, default=1, help="every Nth film")
    parser.add_argument("--only", default=None, help="comma-separated change names (default: all)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-spacing", action="store_true",
                        help="detect without telling the films' pixel spacing (a JPEG with none)")
    args = parser.parse_args()
    # default: the shipped cascade; `--refiner ""` measures the first stage alone
    refiners = ["isbi2015-refiner"] if args.refiner is None else [r for r in args.refiner if r]
    detector = open_detector(args.model, refiner=refiners)
    dataset = open_dataset(args.data)
    if args.split == "val":
        val_ids = set(resolve_model(args.model).metadata.get("training", {}).get("val_images", []))
        samples = [s for s in dataset.split("train") if s.image_id in val_ids][::args.every]
        if not samples:
            raise SystemExit(f"{args.model} records no validation films in {args.data}")
    else:
        samples = dataset.split(args.split)[::args.every]
    rows = {}
    print(f"{args.model}{''.join(' + ' + r for r in refiners)}, {len(samples)} {args.split} films, senior")
    print("| change | MRE | SDR@2mm | > 4 mm | unusable | spacing estimated |")
    print("|---|---:|---:|---:|---:|---:|")
    names = args.only.split(",") if args.only else list(CHANGES)
    unknown = [n for n in names if n not in CHANGES]
    if unknown:
        raise SystemExit(f"unknown change {unknown[0]!r}; known: {', '.join(CHANGES)}")
    for name in names:
        errors, unusable, estimated = [], 0, 0
        for i, sample in enumerate(samples):
            changed = change_film(name, load_grayscale(sample.path), np.random.default_rng(i))
            found = detector.detect(changed.image,
                                    None if args.no_spacing else changed.spacing(sample.spacing_mm))
            if not found.quality.usable:
                unusable += 1
                continue
            estimated += found.estimated_spacing_mm is not None  # refined at the anatomy's scale
            errors.append(radial_errors_mm(changed.to_film(found.landmarks_px)[None],
                                           sample.reference("senior")[None], sample.spacing_mm)[0])
        e = np.stack(errors)
        rows[name] = {"mre_mm": float(e.mean()), "sdr_2mm": float((e <= 2).mean()),
                      "far_off": float((e > 4).mean()), "unusable": unusable,
                      "spacing_estimated": estimated, "films": len(samples)}
        print(f"| {name} | {e.mean():.3f} mm | {(e <= 2).mean():.1%} | {(e > 4).mean():.1%} | "
              f"{unusable} | {estimated} |")
    if args.json:
        atomic_write_json(args.json, {"model": args.model, "refiners": refiners,
                                      "split": args.split, "every": args.every, "rows": rows})


if __name__ == "__main__":
    main()
