"""How accurate the shipped cascade stays on films that look as another device or acquisition might
make them: test1 changed in exposure, contrast, noise, sharpness, resolution, histogram and border,
scored against the senior annotation moved with the pixels.

Usage: python benchmarks/orientation/accuracy_under_change.py DATA_DIR [MODEL] [--refiner R]
    [--every 1] [--no-spacing] [--json OUT.json]        (--refiner "" : the first stage alone)
Every change is seeded per film (numpy default_rng(film index)), so a rerun reads the same films.
"""
from __future__ import annotations

import argparse
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from edgeld.core.files import atomic_write_json
from edgeld.data import load_grayscale, open_dataset
from edgeld.load import open_detector
from edgeld.metrics import radial_errors_mm

# name -> change(image, rng) -> (changed image, point scale, point offset (x, y)): a reference
# point p of the film lies at p * scale + offset in the changed image
Change = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, float, tuple[int, int]]]


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
    "10% black border": lambda im, rng: (np.pad(im, ((im.shape[0] // 10,) * 2, (im.shape[1] // 10,) * 2)),
                                         1.0, (im.shape[1] // 10, im.shape[0] // 10)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("model", nargs="?", default="isbi2015-student")
    parser.add_argument("--refiner", action="append", default=None)
    parser.add_argument("--every", type=int, default=1, help="every Nth test1 film")
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-spacing", action="store_true",
                        help="detect without telling the films' pixel spacing (a JPEG with none)")
    args = parser.parse_args()
    # default: the shipped cascade; `--refiner ""` measures the first stage alone
    refiners = ["isbi2015-refiner"] if args.refiner is None else [r for r in args.refiner if r]
    detector = open_detector(args.model, refiner=refiners)
    samples = open_dataset(args.data).split("test1")[::args.every]
    rows = {}
    print(f"{args.model}{''.join(' + ' + r for r in refiners)}, {len(samples)} test1 films, senior")
    print("| change | MRE | SDR@2mm | > 4 mm | unusable |")
    print("|---|---:|---:|---:|---:|")
    for name, change in CHANGES.items():
        errors, unusable = [], 0
        for i, sample in enumerate(samples):
            image, scale, (dx, dy) = change(load_grayscale(sample.path), np.random.default_rng(i))
            # the changed film's own spacing, as a device would state it (DICOM, --spacing)
            spacing = None if args.no_spacing else tuple(v / scale for v in sample.spacing_mm)
            found = detector.detect(image, spacing)
            if not found.quality.usable:
                unusable += 1
                continue
            # back into the film's own pixels, where the annotation and its spacing are
            points = (found.landmarks_px - np.array([dx, dy])) / scale
            errors.append(radial_errors_mm(points[None], sample.reference("senior")[None],
                                           sample.spacing_mm)[0])
        e = np.stack(errors)
        rows[name] = {"mre_mm": float(e.mean()), "sdr_2mm": float((e <= 2).mean()),
                      "far_off": float((e > 4).mean()), "unusable": unusable, "films": len(samples)}
        print(f"| {name} | {e.mean():.3f} mm | {(e <= 2).mean():.1%} | {(e > 4).mean():.1%} | "
              f"{unusable} |")
    if args.json:
        atomic_write_json(args.json, {"model": args.model, "refiners": refiners,
                                      "split": "test1", "every": args.every, "rows": rows})


if __name__ == "__main__":
    main()
