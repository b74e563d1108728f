"""Write a reduced-resolution copy of a shared-layout dataset.

Why: the GPU machine this comparison ran on takes at most 64 MiB of files. At 1/4 (0.4 mm per
pixel, 484x600 JPEG, quality 90) the ISBI train and test1 images fit, and every model here sees
384x320 inputs, about 0.625 mm per pixel, so the copy keeps all the detail the networks use.
Landmarks are mapped with the pixel-centre convention of edgeld.core.letterbox; the spacing in
dataset.json grows to match. The README compares a model's test1 figures on this copy and on the
original images to show the copy changes nothing that matters.

    python benchmarks/kd-comparison/shrink_dataset.py ../shared/data/isbi2015 .gpu/isbi2015-q 4
"""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

from PIL import Image


def shrink(src: Path, dst: Path, factor: int, splits: tuple[str, ...] = ("train", "test1")) -> None:
    """Copy `splits` of the dataset at src to dst with images `factor` times smaller per side."""
    meta = json.loads((src / "dataset.json").read_text())
    names = [line.strip() for s in splits for line in (src / f"{s}.txt").read_text().splitlines()
             if line.strip()]
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "annotations").mkdir(exist_ok=True)
    scales = {}
    for name in names:  # split files and CSV rows name the image files
        path = src / "images" / name
        with Image.open(path) as im:
            im = im.convert("L")
            w, h = im.size
            small = im.resize((round(w / factor), round(h / factor)), Image.Resampling.LANCZOS)
        small.save(dst / "images" / name, quality=90)
        scales[name] = (small.size[0] / w, small.size[1] / h)
    for csv_path in (src / "annotations").glob("*.csv"):
        with open(csv_path, newline="") as fh:
            rows = list(csv.reader(fh))
        out = [rows[0]]
        for row in rows[1:]:
            if row[0] not in scales:
                continue
            sx, sy = scales[row[0]]
            vals = [(float(v) + 0.5) * (sx if i % 2 == 0 else sy) - 0.5 for i, v in enumerate(row[1:])]
            out.append([row[0]] + [f"{v:.3f}" for v in vals])
        with open(dst / "annotations" / csv_path.name, "w", newline="") as fh:
            csv.writer(fh).writerows(out)
    sx, sy = next(iter(scales.values()))
    row_mm, col_mm = meta["pixel_spacing_mm"]
    meta["pixel_spacing_mm"] = [row_mm / sy, col_mm / sx]
    meta["name"] = f"{meta['name']}-1of{factor}"
    (dst / "dataset.json").write_text(json.dumps(meta, indent=1))
    for s in splits:
        shutil.copy(src / f"{s}.txt", dst / f"{s}.txt")


if __name__ == "__main__":
    shrink(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
