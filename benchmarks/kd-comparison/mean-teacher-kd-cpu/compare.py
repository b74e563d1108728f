"""The mean-teacher probe's table, from the test1 JSONs `edgeld evaluate --json` wrote: the teacher
alone, and per seed the output-KD student (this folder) against the no-KD student of the same
recipe and seed (../mean-annotation-cpu), alone and behind its own refiner, against both references.

    python benchmarks/kd-comparison/mean-teacher-kd-cpu/compare.py
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOKD = HERE.parent / "mean-annotation-cpu"
SEEDS = (0, 1)


def files(kind: str, arm: str, seed: int, ref: str) -> Path:
    """The JSON of one row: kind alone|cascade, arm kd|nokd."""
    if arm == "kd":
        return HERE / "test1" / f"kd-s{seed}-{kind}-{ref}.json"
    if kind == "alone":
        return NOKD / f"student-nokd-mean-s{seed}" / f"test1-{ref}.json"
    return NOKD / f"refiner-mean-s{seed}" / f"cascade-test1-{ref}.json"


def cell(path: Path) -> tuple[float, str]:
    """MRE, and MRE / SDR@2mm / share of points more than 4 mm off as text."""
    r = json.loads(path.read_text())
    return r["mre_mm"], (f"{r['mre_mm']:.3f} / {r['sdr_percent']['2.0']:.1f}% / "
                         f"{100 - r['sdr_percent']['4.0']:.1f}%")


def main() -> None:
    print("| test1, 150 films | seed | vs mean: MRE / SDR@2mm / > 4 mm | vs senior: MRE / SDR@2mm / > 4 mm |")
    print("|---|---:|---:|---:|")
    teacher = [cell(HERE / "test1" / f"teacher-s0-alone-{ref}.json")[1] for ref in ("mean", "senior")]
    print(f"| teacher (4.5 M), alone | 0 | {teacher[0]} | {teacher[1]} |")
    for kind in ("alone", "cascade"):
        for arm, label in (("nokd", "no KD"), ("kd", "output KD from the mean teacher")):
            done = [s for s in SEEDS if files(kind, arm, s, "mean").is_file()]
            for s in done:
                cells = [cell(files(kind, arm, s, ref))[1] for ref in ("mean", "senior")]
                print(f"| {label}, {'student alone' if kind == 'alone' else 'cascade'} | {s} | {cells[0]} | {cells[1]} |")
            if len(done) > 1:
                means = [statistics.mean(cell(files(kind, arm, s, ref))[0] for s in done) for ref in ("mean", "senior")]
                print(f"| {label}, {'student alone' if kind == 'alone' else 'cascade'} | mean | {means[0]:.3f} | {means[1]:.3f} |")


if __name__ == "__main__":
    main()
