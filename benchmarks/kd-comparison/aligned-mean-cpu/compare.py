"""The aligned-mean probe's tables, from the test1 JSONs `edgeld evaluate --json` wrote in test1/:
per arm and seed, MRE / SDR@2mm / > 4 mm share against the senior and the mean; two-seed means;
then per landmark (against the senior, mean of the two seeds) what training toward `aligned` changes.

    python benchmarks/kd-comparison/aligned-mean-cpu/compare.py
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent / "test1"
ROWS = {"senior-trained, cascade": ("senior", "cascade"),
        "aligned-trained, cascade": ("aligned", "cascade"),
        "aligned student + senior refiner": ("hybrid", "cascade"),
        "senior-trained, first stage alone": ("senior", "alone"),
        "aligned-trained, first stage alone": ("aligned", "alone")}
SEEDS = (0, 1)


def load(arm: str, seed: int, kind: str, ref: str) -> dict:
    """One evaluation JSON of the record."""
    return json.loads((HERE / f"{arm}-s{seed}-{kind}-{ref}.json").read_text())


def cell(r: dict) -> str:
    """MRE / SDR@2mm / share of points more than 4 mm off."""
    return f"{r['mre_mm']:.3f} / {r['sdr_percent']['2.0']:.1f}% / {100 - r['sdr_percent']['4.0']:.1f}%"


def main() -> None:
    print("| test1, 150 films | seed | vs senior: MRE / SDR@2mm / > 4 mm | vs mean: MRE / SDR@2mm / > 4 mm |")
    print("|---|---:|---:|---:|")
    for label, (arm, kind) in ROWS.items():
        for s in SEEDS:
            print(f"| {label} | {s} | {cell(load(arm, s, kind, 'senior'))} | {cell(load(arm, s, kind, 'mean'))} |")
        means = [statistics.mean(load(arm, s, kind, ref)["mre_mm"] for s in SEEDS) for ref in ("senior", "mean")]
        print(f"| {label} | mean | {means[0]:.3f} | {means[1]:.3f} |")
    print()
    for kind in ("alone", "cascade"):
        per = {arm: [{p["name"]: p["mre_mm"] for p in load(arm, s, kind, "senior")["per_landmark"]} for s in SEEDS]
               for arm in ("senior", "aligned")}
        avg = {arm: {k: statistics.mean(d[k] for d in per[arm]) for k in per[arm][0]} for arm in per}
        print(f"| {kind}, against the senior | senior-trained | aligned-trained | change |")
        print("|---|---:|---:|---:|")
        for k in sorted(avg["senior"], key=lambda k: avg["aligned"][k] - avg["senior"][k]):
            print(f"| {k} | {avg['senior'][k]:.2f} | {avg['aligned'][k]:.2f} | {avg['aligned'][k] - avg['senior'][k]:+.2f} |")
        print()


if __name__ == "__main__":
    main()
