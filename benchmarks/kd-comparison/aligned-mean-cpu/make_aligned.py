"""Write a copy of a shared-layout dataset with a third annotation, `aligned.csv`: the mean of the
senior's and the junior's clicks with the junior first moved onto the senior's convention.

Why: trained toward the plain mean, the cascade learns the mean's convention and reads worse
against the senior (1.68 against 1.53 mm), yet gonion and articulare come out better against the
senior too: averaging two annotators halves their independent click noise. `aligned` keeps the
senior's convention (each landmark's mean offset senior - junior, measured on the train split
only, is added to the junior's clicks) and the halved noise:

    aligned_k = (senior_k + junior_k + b_k) / 2,   b_k = mean over train films of (senior_k - junior_k)

No test1 label enters b. Images are hard-linked (a symlink would point outside the dataset, which
the loader refuses). Outcome (benchmarks/kd-comparison/README.md, "Trained toward the senior's
convention with the junior's clicks averaged in"): no gain against the senior.

    python benchmarks/kd-comparison/aligned-mean-cpu/make_aligned.py ../shared/data/isbi2015 runs/data/isbi2015-a
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from edgeld.data.datasets import open_dataset


def copy_dataset(src: Path, dst: Path) -> None:
    """dst gets src's dataset.json, split files, annotations and hard links to its images."""
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "annotations").mkdir(exist_ok=True)
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, dst / f.name)
    for f in (src / "annotations").glob("*.csv"):
        shutil.copy2(f, dst / "annotations" / f.name)
    for f in (src / "images").iterdir():
        target = dst / "images" / f.name
        if not target.exists():
            os.link(f, target)


def write_aligned(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Write root/annotations/aligned.csv for every film with both annotations.

    Returns b (K, 2) px and, per landmark, the mean distance in px left between the senior and the
    shifted junior on the train films (how much scatter averaging the junior in brings).
    """
    ds = open_dataset(root)
    train = ds.split("train")
    d = np.array([s.landmarks["senior"] - s.landmarks["junior"] for s in train])
    b = d.mean(axis=0)
    residual = np.linalg.norm(d - b, axis=2).mean(axis=0)
    rows = []
    for split in ds.splits.values():
        for s in split:
            if {"senior", "junior"} <= set(s.landmarks):
                pts = (s.landmarks["senior"] + s.landmarks["junior"] + b) / 2.0
                rows.append([s.image_id] + [f"{v:.3f}" for v in pts.reshape(-1)])
    header = ["image"] + [f"{n}_{a}" for n in ds.landmark_names for a in ("x", "y")]
    tmp = root / "annotations" / "aligned.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header] + rows)
    tmp.replace(root / "annotations" / "aligned.csv")
    return b, residual


def main(src: str, dst: str) -> None:
    src_p, dst_p = Path(src), Path(dst)
    if src_p.resolve() != dst_p.resolve():
        copy_dataset(src_p, dst_p)
    b, residual = write_aligned(dst_p)
    spacing = json.loads((dst_p / "dataset.json").read_text()).get("pixel_spacing_mm", [0.1, 0.1])
    names = open_dataset(dst_p).landmark_names
    print("landmark                 b_x mm   b_y mm   |b| mm   left mm   (senior - junior, train split)")
    for name, (bx, by), left in zip(names, b, residual):
        mx, my = bx * spacing[1], by * spacing[0]
        # spacing is isotropic on ISBI (0.1 mm), so one factor turns the residual into mm
        print(f"{name:24s} {mx:+7.2f}  {my:+7.2f}  {np.hypot(mx, my):6.2f}   {left * spacing[0]:6.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
