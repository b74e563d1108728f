"""How the orientation and usability checks behave on films unlike the training films, and on
images that are no film at all.

Usage: python benchmarks/orientation/robustness.py DATA_DIR [MODEL] [--refiner REFINER]
Every 5th test1 film, changed as another device or acquisition might change it (seeded), then a
corpus of images that are not cephalograms. Prints, per change, how many films were judged
unusable or turned (none should be turned: they are all upright) and the weakest correlation and
mean first-stage confidence.
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from edgeld.data import load_grayscale, open_dataset
from edgeld.load import open_detector


def changes(rng: np.random.Generator) -> dict:
    def crop(img: np.ndarray, most: float) -> np.ndarray:
        h, w = img.shape
        t, b, l, r = (int(rng.uniform(0, most) * n) for n in (h, h, w, w))
        return img[t:h - b, l:w - r]

    return {
        "crop up to 25% a side": lambda im: crop(im, 0.25),
        "crop up to 40% a side": lambda im: crop(im, 0.40),
        "20% black border": lambda im: np.pad(im, ((im.shape[0] // 5,) * 2, (im.shape[1] // 5,) * 2)),
        "gamma 0.4 or 2.5": lambda im: (255 * (im / 255.0) ** rng.choice([0.4, 2.5])).astype(np.uint8),
        "contrast x0.35": lambda im: np.clip(im * 0.35 + 90, 0, 255).astype(np.uint8),
        "noise sigma 25": lambda im: np.clip(im + rng.normal(0, 25, im.shape), 0, 255).astype(np.uint8),
        "blur sigma 8 px": lambda im: np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(8))),
        "half resolution": lambda im: np.asarray(Image.fromarray(im).resize((im.shape[1] // 2, im.shape[0] // 2))),
        "histogram equalised": lambda im: np.asarray(ImageOps.equalize(Image.fromarray(im))),
        "square crop (top)": lambda im: im[:im.shape[1], :],
    }


def not_films(rng: np.random.Generator) -> dict:
    yy, xx = np.mgrid[0:1600, 0:1600]
    chest = np.full((1600, 1600), 200.0)  # two lung fields: an X-ray that is no cephalogram
    for cx in (520, 1080):
        chest -= 150 * np.exp(-(((xx - cx) / 240) ** 2 + ((yy - 800) / 480) ** 2))
    blob = 255 * np.exp(-((np.mgrid[0:2400, 0:1935][0] - 1200) ** 2
                          + (np.mgrid[0:2400, 0:1935][1] - 900) ** 2) / (2 * 500.0 ** 2))
    return {
        "black 2400x1935": np.zeros((2400, 1935), np.uint8),
        "white 2400x1935": np.full((2400, 1935), 255, np.uint8),
        "uniform noise": rng.integers(0, 256, (2400, 1935), dtype=np.uint8),
        "10x10": rng.integers(0, 256, (10, 10), dtype=np.uint8),
        "100x5000 strip": rng.integers(0, 256, (100, 5000), dtype=np.uint8),
        "smooth blob": blob.astype(np.uint8),
        "chest-like": np.clip(chest + rng.normal(0, 5, chest.shape), 0, 255).astype(np.uint8),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("model", nargs="?", default="isbi2015-student")
    parser.add_argument("--refiner", action="append", default=[])
    args = parser.parse_args()
    detector = open_detector(args.model, refiner=args.refiner)
    samples = open_dataset(args.data).split("test1")[::5]
    rng = np.random.default_rng(1)
    print(f"{args.model}{''.join(' + ' + r for r in args.refiner)}, {len(samples)} test1 films each")
    print("| change | unusable | turned | weakest correlation | weakest mean confidence |")
    print("|---|---:|---:|---:|---:|")
    for name, change in changes(rng).items():
        results = [detector.detect(np.ascontiguousarray(change(load_grayscale(s.path))))
                   for s in samples]
        print(f"| {name} | {sum(not r.quality.usable for r in results)} | "
              f"{sum(r.orientation != 'upright' for r in results)} | "
              f"{min(r.quality.score for r in results):.2f} | "
              f"{min(float(r.confidence.mean()) for r in results):.2f} |")
    print("\n| not a film | usable | reason |")
    print("|---|---|---|")
    for name, image in not_films(rng).items():
        q = detector.detect(image).quality
        print(f"| {name} | {q.usable} | {q.reason} |")


if __name__ == "__main__":
    main()
