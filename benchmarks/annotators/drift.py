"""Does an annotator's convention move between blocks of films? (accuracy issue, the > 4 mm share)

Usage:
    python benchmarks/annotators/drift.py DATA_DIR [--student M] [--refiner M] [--block 25]
        [--landmarks gonion,porion,articulare] [--json OUT]

Two tables, for the landmarks named:
1. The junior-minus-senior offset (mm, x right, y down), mean over each block of consecutive film
   ids in train and test1. Where it jumps between blocks, one annotator changed convention.
2. The cascade's (student + refiner) mean offset and error against each annotator on each test1
   block, and its share of points more than 4 mm from each; then that share over all of test1,
   also with the cascade's mean offset from the senior removed (an oracle, for explanation). A model is one function of the
   film: if its offset from one annotator stays put while its offset from the other moves from
   block to block, the second annotator moved.
No figure here feeds a model or a selection; it says what part of test1's error the reference
itself carries.
"""
from __future__ import annotations

import argparse

import numpy as np

from edgeld.core.files import atomic_write_json
from edgeld.data import open_dataset
from edgeld.evaluate import predict_samples
from edgeld.load import open_detector


def block_rows(ids: list[str], values: np.ndarray, block: int) -> list[tuple[str, np.ndarray]]:
    """(label 'first-last', the rows of `values` in that block) for consecutive blocks of films."""
    return [(f"{ids[a]}-{ids[min(a + block, len(ids)) - 1]}", values[a:a + block])
            for a in range(0, len(ids), block)]


def offsets_mm(a: np.ndarray, b: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """a - b in mm, (N, K, 2), with each film's (row, col) spacing applied to (y, x)."""
    return (a - b) * spacing[:, None, ::-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--student", default="isbi2015-student")
    parser.add_argument("--refiner", default="isbi2015-refiner")
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("--landmarks", default="gonion,porion,articulare")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()
    dataset = open_dataset(args.data)
    names = dataset.landmark_names
    chosen = [names.index(n) for n in args.landmarks.split(",")]
    record: dict = {"block": args.block, "annotators": {}, "cascade": {}}

    films = dataset.split("train") + dataset.split("test1")
    ids = [s.image_id.split(".")[0] for s in films]
    spacing = np.array([s.spacing_mm for s in films], dtype=float)
    senior = np.stack([s.reference("senior") for s in films])
    junior = np.stack([s.reference("junior") for s in films])
    apart = offsets_mm(junior, senior, spacing)
    print(f"junior - senior, mean (x, y) mm per block of {args.block} films (train, then test1)")
    for k in chosen:
        rows = block_rows(ids, apart[:, k], args.block)
        record["annotators"][names[k]] = {label: v.mean(0).round(3).tolist() for label, v in rows}
        print(f"  {names[k]:12s} " + "  ".join(f"{label} ({v[:, 0].mean():+.1f},{v[:, 1].mean():+.1f})"
                                               for label, v in rows))

    test = dataset.split("test1")
    detector = open_detector(args.student, threads=2, refiner=args.refiner)
    points, _ = predict_samples(detector, test, progress=False)
    test_ids = [s.image_id.split(".")[0] for s in test]
    test_spacing = np.array([s.spacing_mm for s in test], dtype=float)
    vs = {who: offsets_mm(points, np.stack([s.reference(who) for s in test]), test_spacing)
          for who in ("senior", "junior")}
    print(f"\ncascade ({args.student} + {args.refiner}) on test1 per block: mean offset (x, y) mm, "
          "MRE and > 4 mm share against each annotator")
    for k in chosen:
        record["cascade"][names[k]] = {}
        for (label, s), (_, j) in zip(block_rows(test_ids, vs["senior"][:, k], args.block),
                                      block_rows(test_ids, vs["junior"][:, k], args.block)):
            es, ej = np.linalg.norm(s, axis=-1), np.linalg.norm(j, axis=-1)
            record["cascade"][names[k]][label] = {
                "senior": {"offset": s.mean(0).round(3).tolist(), "mre": round(float(es.mean()), 3),
                           "over_4mm": round(float((es > 4).mean() * 100), 1)},
                "junior": {"offset": j.mean(0).round(3).tolist(), "mre": round(float(ej.mean()), 3),
                           "over_4mm": round(float((ej > 4).mean() * 100), 1)}}
            print(f"  {names[k]:12s} {label}  senior ({s[:, 0].mean():+.1f},{s[:, 1].mean():+.1f}) "
                  f"{es.mean():.2f} mm, > 4 mm {100 * (es > 4).mean():3.0f}%  |  junior "
                  f"({j[:, 0].mean():+.1f},{j[:, 1].mean():+.1f}) {ej.mean():.2f} mm, "
                  f"> 4 mm {100 * (ej > 4).mean():3.0f}%")
    print("\nover all of test1: > 4 mm share against the senior, the junior, and the senior with the "
          "cascade's mean offset from it removed (an oracle that uses test1's labels: explanation only)")
    record["test1"] = {}
    for k in chosen:
        s, j = vs["senior"][:, k], vs["junior"][:, k]
        shares = {"senior": (np.linalg.norm(s, axis=-1) > 4).mean() * 100,
                  "junior": (np.linalg.norm(j, axis=-1) > 4).mean() * 100,
                  "senior_offset_removed": (np.linalg.norm(s - s.mean(0), axis=-1) > 4).mean() * 100}
        record["test1"][names[k]] = {key: round(float(v), 1) for key, v in shares.items()}
        print(f"  {names[k]:12s} senior {shares['senior']:4.1f}%  junior {shares['junior']:4.1f}%  "
              f"senior, offset removed {shares['senior_offset_removed']:4.1f}%")
    if args.json:
        atomic_write_json(args.json, record)


if __name__ == "__main__":
    main()
