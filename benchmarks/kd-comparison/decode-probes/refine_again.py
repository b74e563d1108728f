"""Does running the fine refiner again from its own output help? (accuracy issue, item 6)

The cascade as shipped (one refiner pass from the first stage's points), then the refiner applied
a second and a third time, each from the previous pass's points, and the mean of passes 1 and 2.

    python benchmarks/kd-comparison/decode-probes/refine_again.py ../shared/data/isbi2015 \
        --split test1 --student isbi2015-student --refiner isbi2015-refiner
    python benchmarks/kd-comparison/decode-probes/refine_again.py ../shared/data/isbi2015 \
        --split val --student runs/validated/student.safetensors --refiner runs/validated/refiner.safetensors
"""
from __future__ import annotations

import argparse

import numpy as np

from edgeld.data import load_grayscale, open_dataset
from edgeld.load import open_detector
from edgeld.metrics import radial_errors_mm
from edgeld.model_ref import resolve_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--split", default="test1", help="a split, or val: the student's validation films")
    parser.add_argument("--student", default="isbi2015-student")
    parser.add_argument("--refiner", default="isbi2015-refiner")
    args = parser.parse_args()
    dataset = open_dataset(args.data)
    if args.split == "val":
        val_ids = set(resolve_model(args.student).metadata["training"]["val_images"])
        samples = [s for s in dataset.split("train") if s.image_id in val_ids]
    else:
        samples = dataset.split(args.split)
    student = open_detector(args.student, threads=2)
    refiner = open_detector(args.refiner, threads=2)
    passes: list[list[np.ndarray]] = [[], [], []]
    refs, spacings = [], []
    for s in samples:
        film = load_grayscale(s.path)
        points = student.detect(film, s.spacing_mm).landmarks_px
        for k in range(3):
            points = refiner.refine(film, points)[0]
            passes[k].append(points)
        refs.append(s.reference("senior"))
        spacings.append(s.spacing_mm)
    refs_a = np.array(refs)
    rows = {f"{k + 1} refiner pass{'es' if k else ''}": np.array(p) for k, p in enumerate(passes)}
    rows["mean of passes 1 and 2"] = (rows["1 refiner pass"] + rows["2 refiner passes"]) / 2
    print(f"{args.student} + {args.refiner}, {args.split}, {len(samples)} films, senior")
    print("| cascade | MRE | SDR@2mm | > 4 mm |\n|---|---:|---:|---:|")
    for name, points in rows.items():
        e = radial_errors_mm(points, refs_a, np.array(spacings))
        print(f"| {name} | {e.mean():.4f} mm | {(e <= 2).mean():.1%} | {(e > 4).mean():.1%} |")


if __name__ == "__main__":
    main()
