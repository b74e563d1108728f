"""How far the two ISBI 2015 annotators are apart: the human reference for every MRE here.

Usage: python benchmarks/annotators/agreement.py DATA_DIR [SPLIT...]
Prints, per split, the mean radial distance (mm) between the senior and junior annotation and
the share of landmarks within 2 mm (SDR@2mm of one annotator against the other).
"""
from __future__ import annotations

import sys

import numpy as np

from edgeld.data import open_dataset
from edgeld.metrics import radial_errors_mm, summarize


def main(data_dir: str, *splits: str) -> None:
    dataset = open_dataset(data_dir)
    for split in splits or ("train", "test1"):
        samples = dataset.split(split)
        senior = [s.reference("senior") for s in samples]
        junior = [s.reference("junior") for s in samples]
        spacing = [s.spacing_mm for s in samples]
        errors = radial_errors_mm(np.stack(junior), np.stack(senior), np.array(spacing))
        result = summarize(errors, dataset.landmark_names)
        print(f"{split} ({len(samples)} images): senior vs junior {result['mre_mm']:.3f} mm, "
              f"SDR@2mm {result['sdr_percent']['2.0']:.1f}%")


if __name__ == "__main__":
    main(*sys.argv[1:])
