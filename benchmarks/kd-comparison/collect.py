"""Evaluate every run of a sweep on one split and tabulate each method's mean and spread over seeds.

    python benchmarks/kd-comparison/collect.py runs/kd --data DATA --split test1 --out DIR

Writes DIR/results.json (one record per run: validation and test figures, params, MACs, epochs,
wall time) and DIR/results.md (per method: mean +- sample std over seeds, and every run).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

REFERENCES = ("senior", "mean")


def evaluate_run(run: Path, data: str, split: str, backend: str) -> dict:
    """One run's best checkpoint on `split` against each reference, with its training facts."""
    import torch

    from edgeld.data import open_dataset
    from edgeld.evaluate import predict_samples, references
    from edgeld.load import open_detector
    from edgeld.metrics import radial_errors_mm, summarize
    from edgeld.info import checkpoint_metadata

    torch.set_num_threads(1)
    dataset = open_dataset(data)

    ckpt = run / "best.safetensors"
    meta = checkpoint_metadata(ckpt)  # the description only; open_detector loads the weights
    detector = open_detector(str(ckpt), backend=backend)
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    training = meta["training"]
    record = {"run": run.name, "group": re.sub(r"-s\d+$", "", run.name),
              "seed": training["train"]["seed"], "params": meta["params"], "macs": meta["macs"],
              "epochs_done": len(log), "epochs_planned": training["train"]["epochs"],
              "wall_s": log[-1]["elapsed_s"], "device": training.get("device"),
              "best_epoch": training["best"]["epoch"], "val_mre_mm": training["best"]["val_mre_mm"],
              "val_sdr_2mm": training["best"]["val_sdr_2mm"]}
    samples = dataset.split(split)
    pred, _ = predict_samples(detector, samples, progress=False)  # once, scored against each reference
    for ref in REFERENCES:
        refs, spacing = references(dataset, samples, ref)
        result = summarize(radial_errors_mm(pred, refs, spacing), dataset.landmark_names)
        record[ref] = {"mre_mm": result["mre_mm"], "sdr_percent": result["sdr_percent"],
                       "per_landmark_mre_mm": {p["name"]: p["mre_mm"] for p in result["per_landmark"]}}
    return record


def summarize(records: list[dict]) -> list[dict]:
    """Per group: mean and sample standard deviation over seeds of each headline figure."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r)
    rows = []
    for group, runs in groups.items():
        def stat(values: list[float]) -> tuple[float, float]:
            return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append({"group": group, "seeds": len(runs), "params": runs[0]["params"],
                     "macs": runs[0]["macs"],
                     "val_mre_mm": stat([r["val_mre_mm"] for r in runs]),
                     **{f"{ref}_mre_mm": stat([r[ref]["mre_mm"] for r in runs]) for ref in REFERENCES},
                     **{f"{ref}_sdr_{k}": stat([r[ref]["sdr_percent"][k] for r in runs])
                        for ref in REFERENCES for k in ("2.0", "2.5", "3.0", "4.0")}})
    return rows


def markdown(rows: list[dict], records: list[dict], split: str, data: str) -> str:
    pm = lambda s: f"{s[0]:.3f} ± {s[1]:.3f}"  # noqa: E731
    pc = lambda s: f"{s[0]:.1f} ± {s[1]:.1f}"  # noqa: E731
    lines = [f"# KD comparison on {split} ({data})", "",
             "Mean ± sample standard deviation over seeds; selection on the validation images "
             "carved from train, never on the test split.", "",
             "| run | seeds | params | GMACs | val MRE mm | MRE mm (senior) | SDR@2 | SDR@2.5 | SDR@3 "
             "| SDR@4 | MRE mm (mean ref.) | SDR@2 (mean ref.) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['group']} | {r['seeds']} | {r['params'] / 1e6:.2f} M | {r['macs'] / 1e9:.2f} "
                     f"| {pm(r['val_mre_mm'])} | {pm(r['senior_mre_mm'])} | {pc(r['senior_sdr_2.0'])} "
                     f"| {pc(r['senior_sdr_2.5'])} | {pc(r['senior_sdr_3.0'])} | {pc(r['senior_sdr_4.0'])} "
                     f"| {pm(r['mean_mre_mm'])} | {pc(r['mean_sdr_2.0'])} |")
    lines += ["", "Every run:", "", "| run | device | epochs | best epoch | wall s | val MRE mm "
              "| MRE mm (senior) | SDR@2 |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['run']} | {r['device']} | {r['epochs_done']}/{r['epochs_planned']} "
                     f"| {r['best_epoch']} | {r['wall_s']:.0f} | {r['val_mre_mm']:.3f} "
                     f"| {r['senior']['mre_mm']:.3f} | {r['senior']['sdr_percent']['2.0']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """MRE and SDR@2mm per run group, mean with seed spread as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["senior_mre_mm"][0])
    names = [r["group"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.5), sharey=True)
    for ax, key, label in ((axes[0], "senior_mre_mm", "test1 MRE, mm (lower is better)"),
                           (axes[1], "senior_sdr_2.0", "test1 SDR@2mm, % (higher is better)")):
        ax.barh(names, [r[key][0] for r in rows], xerr=[r[key][1] for r in rows],
                color=["tab:orange" if n.startswith("student-fsf") else "tab:blue" for n in names])
        lo = min(r[key][0] - r[key][1] for r in rows)
        hi = max(r[key][0] + r[key][1] for r in rows)
        ax.set_xlim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    fig.suptitle("Distillation on the 0.81 M-param student: mean and std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(results_json: Path, out: Path) -> None:
    """results.md and kd-comparison.png from a results.json written by this script."""
    data = json.loads(results_json.read_text())
    (out / "results.md").write_text(markdown(data["summary"], data["runs"], data["split"], data["data"]))
    plot(data["summary"], out / "kd-comparison.png")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", help="The sweep's run folder, or a results.json to render again.")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test1")
    ap.add_argument("--out", required=True)
    ap.add_argument("--backend", default="torch-cpu")
    ap.add_argument("--jobs", type=int, default=1, help="Runs evaluated at once (processes).")
    args = ap.parse_args()
    if args.sweep.endswith(".json"):
        render(Path(args.sweep), Path(args.out))
        return 0
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    runs = sorted(p.parent for p in Path(args.sweep).glob("*/best.safetensors"))
    records = []
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(evaluate_run, run, args.data, args.split, args.backend) for run in runs]
        for future in futures:
            records.append(future.result())
            r = records[-1]
        print(f"{r['run']:24s} {r['epochs_done']:3d} ep  val {r['val_mre_mm']:.3f}  "
              f"{args.split} {r['senior']['mre_mm']:.3f} mm  {r['senior']['sdr_percent']['2.0']:.1f}%",
              flush=True)
    rows = summarize(records)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"split": args.split, "data": args.data,
                                                  "summary": rows, "runs": records}, indent=1))
    render(out / "results.json", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
