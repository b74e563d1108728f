"""Is an ensemble of first stages a teacher worth distilling? (accuracy issue, items 1 and 4)

Every first stage given (checkpoints, built-in names) detects every film of the split; their
points are combined per landmark (mean, median) and, like each member alone, refined by the
refiner as the runtime does. Prints MRE, SDR@2mm and the share of points more than 4 mm off, for
each member and each combination, first stage alone and behind the refiner, and how well the
members' disagreement singles out the gross misses. The members' points are cached in --cache
(npz), so that a second call only refines.

    python benchmarks/kd-comparison/ensemble-probe/ensemble_probe.py ../shared/data/isbi2015 \
        --split test1 --refiner runs/validated/refiner.safetensors --cache points.npz MEMBER...
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgeld.data import load_grayscale, open_dataset
from edgeld.load import open_detector
from edgeld.metrics import radial_errors_mm


def member_points(members: list[str], samples: list, cache: Path | None) -> np.ndarray:
    """(members, films, K, 2) first-stage points in film pixels, read from `cache` if it holds
    the same members and films, else detected (and written there)."""
    ids = np.array([s.image_id for s in samples])
    if cache is not None and cache.exists():
        held = np.load(cache)
        if list(held["members"]) == members and list(held["ids"]) == list(ids):
            return held["points"]
    per_member = []
    for name in members:
        detector = open_detector(name, threads=2)
        per_member.append(np.stack([detector.detect(load_grayscale(s.path), s.spacing_mm).landmarks_px
                                    for s in samples]))
        print(f"detected: {name}", flush=True)
    points = np.stack(per_member)
    if cache is not None:
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, members=np.array(members), ids=ids, points=points)
        tmp.replace(cache)
    return points


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = score[positive], score[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("members", nargs="+", help="first stages: checkpoints or built-in names")
    parser.add_argument("--split", default="test1")
    parser.add_argument("--refiner", default="runs/validated/refiner.safetensors")
    parser.add_argument("--reference", default="senior")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    samples = open_dataset(args.data).split(args.split)
    points = member_points(args.members, samples, args.cache)
    truth = np.stack([s.reference(args.reference) for s in samples])
    spacing = np.array([s.spacing_mm for s in samples])
    refiner = open_detector(args.refiner, threads=2)
    films = [load_grayscale(s.path) for s in samples]
    rows = {Path(m).parent.name if m.endswith(".safetensors") else m: p
            for m, p in zip(args.members, points)}
    centre = np.median(points, axis=0)  # the median combination, and where the spread is measured from
    rows[f"mean of {len(args.members)}"] = points.mean(axis=0)
    median_row = f"median of {len(args.members)}"
    rows[median_row] = centre
    print(f"{args.split}, {len(samples)} films, {args.reference}; refiner {args.refiner}")
    print("| first stage | alone MRE | > 4 mm | + refiner MRE | SDR@2mm | > 4 mm |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, p in rows.items():
        alone = radial_errors_mm(p, truth, spacing)
        refined = np.stack([refiner.refine(f, q)[0] for f, q in zip(films, p)])
        e = radial_errors_mm(refined, truth, spacing)
        if name == median_row:
            cascade_median, cascade_points = e, refined
        print(f"| {name} | {alone.mean():.3f} | {(alone > 4).mean():.1%} | {e.mean():.3f} | "
              f"{(e <= 2).mean():.1%} | {(e > 4).mean():.1%} |", flush=True)
    # disagreement: each point's median distance of the members from their median, in mm
    spread = np.median(np.linalg.norm((points - centre) * spacing[None, :, None, :], axis=-1), axis=0)
    far = cascade_median > 4
    print(f"members' spread (median distance from their median): {np.median(spread):.2f} mm on all "
          f"points, {np.median(spread[far]):.2f} mm on the median cascade's points > 4 mm off; "
          f"AUC for singling those out {auc(spread.ravel(), far.ravel()):.2f}")
    print_bias(cascade_points, truth, spacing, refiner.io.landmarks)


def print_bias(points: np.ndarray, truth: np.ndarray, spacing: np.ndarray, names: list[str]) -> None:
    """Per landmark: the share of points > 4 mm off, the mean signed error (a shift every film
    shares), and the MRE left if that shift were removed. The removal is an oracle (it reads the
    split's own references): it measures how much of the error is one systematic shift."""
    d = (points - truth) * spacing[:, None, :]
    bias = d.mean(axis=0)
    e, e0 = np.linalg.norm(d, axis=-1), np.linalg.norm(d - bias, axis=-1)
    print("| landmark | > 4 mm | mean signed error x, y (mm) | MRE | MRE less the shift (oracle) |")
    print("|---|---:|---:|---:|---:|")
    for k in np.argsort(-(e > 4).mean(axis=0)):
        print(f"| {names[k]} | {(e[:, k] > 4).mean():.0%} | {bias[k, 0]:+.2f}, {bias[k, 1]:+.2f} | "
              f"{e[:, k].mean():.2f} | {e0[:, k].mean():.2f} |")
    print(f"all: MRE {e.mean():.3f} mm, > 4 mm {(e > 4).mean():.1%}; less each landmark's shift "
          f"(oracle) {e0.mean():.3f} mm, > 4 mm {(e0 > 4).mean():.1%}")


if __name__ == "__main__":
    main()
