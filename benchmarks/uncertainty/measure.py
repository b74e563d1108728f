"""How well the shipped models' `uncertain` flags pick out landmarks more than 4 mm off, on a split.

    python benchmarks/uncertainty/measure.py --data ../shared/data/isbi2015 --split test1 \
        --out benchmarks/uncertainty

Writes results.json and error-vs-score.png (error against score per landmark, and the share of far-off
landmarks caught against the share flagged as the threshold moves), for the student alone and the
cascade. The scores were fitted on the student's 20 validation films (`edgeld uncertainty fit`);
the split measured here was never trained, selected or fitted on.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgeld.core.files import atomic_write_json
from edgeld.data.datasets import open_dataset
from edgeld.evaluate import detect_samples, flag_summary, references
from edgeld.load import open_detector
from edgeld.metrics import radial_errors_mm

SETUPS = {"student alone": ("isbi2015-student", None),
          "cascade": ("isbi2015-student", "isbi2015-refiner")}


def measure(data: str, split: str) -> dict:
    dataset = open_dataset(data)
    samples = dataset.split(split)
    refs, spacing = references(dataset, samples, "senior")
    junior = np.stack([s.reference("junior") for s in samples])
    annotators = radial_errors_mm(junior, refs, spacing)
    out = {"split": split, "reference": "senior", "films": len(samples), "setups": {}}
    for name, (model, refiner) in SETUPS.items():
        with open_detector(model, refiner=refiner) as detector:
            points, _, found = detect_samples(detector, samples)
        errors = radial_errors_mm(points, refs, spacing)
        scores = np.stack([d.uncertainty for d in found])
        flags = np.stack([d.uncertain for d in found])
        far = errors > 4.0
        out["setups"][name] = {
            **flag_summary(errors, found),
            "mre_mm": float(errors.mean()),
            "far_off_where_annotators_differ_over_3mm": float((annotators[far] > 3.0).mean()),
            "per_landmark": {lm: {"far_off": int(far[:, k].sum()),
                                  "flagged": int(flags[:, k].sum())}
                             for k, lm in enumerate(dataset.landmark_names)},
            "errors_mm": errors.round(3).tolist(), "scores": scores.round(5).tolist(),
            "threshold": float(detector.uncertainty_spec.threshold),
        }
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, (name, r) in zip(axes[:2], result["setups"].items()):
        err, score = np.ravel(r["errors_mm"]), np.ravel(r["scores"])
        flagged = score > r["threshold"]
        ax.scatter(score[~flagged], err[~flagged], s=4, alpha=0.4, label="not flagged")
        ax.scatter(score[flagged], err[flagged], s=4, alpha=0.6, color="tab:red", label="flagged uncertain")
        ax.axhline(4.0, color="k", lw=0.8, ls="--", label="4 mm")
        ax.axvline(r["threshold"], color="tab:red", lw=0.8, label=f"threshold {r['threshold']:.3f}")
        ax.set(xscale="log", yscale="log", xlabel="uncertainty score (fitted P(error > 4 mm))",
               ylabel="radial error vs senior (mm)",
               title=f"{name}: {100 * r['flagged_share']:.1f}% flagged, "
                     f"{100 * r['far_off_flagged_share']:.1f}% of {r['far_off']} > 4 mm caught")
        ax.legend(fontsize=8, loc="lower right")
        order = np.argsort(-score)
        caught = np.cumsum((err[order] > 4.0)) / max((err > 4.0).sum(), 1)
        share = np.arange(1, len(order) + 1) / len(order)
        axes[2].plot(100 * share, 100 * caught, label=name)
    axes[2].plot([0, 100], [0, 100], color="grey", lw=0.8, ls=":", label="random flags")
    axes[2].scatter([10], [60], marker="*", s=120, color="k", label="target: 60% caught at 10% flagged")
    axes[2].set(xlim=(0, 40), ylim=(0, 100), xlabel="landmarks flagged (%)",
                ylabel="landmarks > 4 mm off that are flagged (%)",
                title="moving the threshold")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"Per-landmark uncertainty on ISBI 2015 {result['split']} ({result['films']} films, "
                 "senior reference); scores fitted on the student's 20 validation films")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test1")
    parser.add_argument("--out", default="benchmarks/uncertainty")
    args = parser.parse_args()
    out = Path(args.out)
    result = measure(args.data, args.split)
    atomic_write_json(out / "results.json", result)
    plot(result, out / "error-vs-score.png")
    for name, r in result["setups"].items():
        print(f"{name}: MRE {r['mre_mm']:.3f} mm; flagged {100 * r['flagged_share']:.1f}% of landmarks, "
              f"catching {100 * r['far_off_flagged_share']:.1f}% of the {r['far_off']} > 4 mm "
              f"(precision {100 * r['flagged_far_off_share']:.1f}%); unflagged MRE "
              f"{r['mre_unflagged_mm']:.3f} mm; > 4 mm where the annotators differ by > 3 mm: "
              f"{100 * r['far_off_where_annotators_differ_over_3mm']:.0f}%")


if __name__ == "__main__":
    main()
