"""Per landmark, test1 MRE of the senior-trained and the mean-trained validated cascades (seed 0),
against each reference, from the JSONs `edgeld evaluate --json` wrote in this folder; rows sorted by
what training toward the mean gains against the mean.

    python benchmarks/kd-comparison/mean-annotation-cpu/per_landmark.py
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = {"senior-trained vs senior": "senior-trained/cascade-test1-senior.json",
           "mean-trained vs senior": "refiner-mean-s0/cascade-test1-senior.json",
           "senior-trained vs mean": "senior-trained/cascade-test1-mean.json",
           "mean-trained vs mean": "refiner-mean-s0/cascade-test1-mean.json"}


def per_landmark(path: Path) -> dict[str, float]:
    """Landmark name -> MRE in mm, from one evaluation JSON."""
    return {row["name"]: row["mre_mm"] for row in json.loads(path.read_text())["per_landmark"]}


def main() -> None:
    mre = {column: per_landmark(HERE / file) for column, file in COLUMNS.items()}
    gain = {k: mre["senior-trained vs mean"][k] - mre["mean-trained vs mean"][k]
            for k in mre["mean-trained vs mean"]}
    print("| landmark | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for name in sorted(gain, key=lambda k: -gain[k]):
        print(f"| {name} | " + " | ".join(f"{mre[c][name]:.2f}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
