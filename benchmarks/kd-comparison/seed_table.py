"""KD against no KD over seeds, from recorded run folders: each arm's runs, their mean ± std
(sample std, n-1), and the issue's test (the distilled cascade better than the undistilled one by
more than twice the larger of the two arms' seed std).

    python benchmarks/kd-comparison/seed_table.py \
        --arm "output KD" RUN... --arm "no KD" RUN...

A run folder holds what `edgeld train` wrote (summary.json) and the `edgeld evaluate --json`
files of the README's commands: test1-parabola.json (the checkpoint as trained),
test1-radius.json (after `decode fit`; optional) and cascade-test1.json (behind the refiner).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

COLUMNS = (("val (20)", "summary.json"), ("alone, parabola", "test1-parabola.json"),
           ("alone, fitted radius", "test1-radius.json"), ("cascade", "cascade-test1.json"),
           ("cascade SDR@2mm", "cascade-test1.json"), ("cascade > 4 mm", "cascade-test1.json"))


def run_figures(run: Path) -> dict[str, float | None]:
    """One run's figures by column name; None where the run has no such file."""
    out: dict[str, float | None] = {}
    for name, file in COLUMNS:
        path = run / file
        if not path.is_file():
            out[name] = None
            continue
        data = json.loads(path.read_text())
        if file == "summary.json":
            out[name] = data["best"]["val_mre_mm"]
        elif name == "cascade SDR@2mm":
            out[name] = data["sdr_percent"]["2.0"]
        elif name == "cascade > 4 mm":
            out[name] = 100.0 - data["sdr_percent"]["4.0"]
        else:
            out[name] = data["mre_mm"]
    return out


def run_seed(run: Path) -> int | None:
    """The seed a run was trained with (its config.json), or None."""
    path = run / "config.json"
    return json.loads(path.read_text())["train"]["seed"] if path.is_file() else None


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(column: str, value: float) -> str:
    """mm to 3 decimals, percentages to 1."""
    return f"{value:.1f}%" if "SDR" in column or ">" in column else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", nargs="+", action="append", required=True,
                        metavar=("NAME", "RUN"), help="an arm's name, then its run folders")
    args = parser.parse_args()
    arms = {spec[0]: [Path(p) for p in spec[1:]] for spec in args.arm}

    header = "| arm | run | " + " | ".join(name for name, _ in COLUMNS) + " |"
    print(header)
    print("|---|---|" + "---:|" * len(COLUMNS))
    summaries: dict[str, dict[str, tuple[float, float, int]]] = {}
    by_seed: dict[str, dict[int, dict[str, float | None]]] = {}
    for arm, runs in arms.items():
        figures = [run_figures(r) for r in runs]
        by_seed[arm] = {run_seed(r): f for r, f in zip(runs, figures)}
        for run, fig in zip(runs, figures):
            cells = ["-" if fig[n] is None else _fmt(n, fig[n]) for n, _ in COLUMNS]
            print(f"| {arm} | {run.name} | " + " | ".join(cells) + " |")
        summaries[arm] = {}
        cells = []
        for name, _ in COLUMNS:
            values = [f[name] for f in figures if f[name] is not None]
            if not values:
                cells.append("-")
                continue
            m, s = mean_std(values)
            summaries[arm][name] = (m, s, len(values))
            cells.append(f"{_fmt(name, m)} ± {_fmt(name, s)} (n={len(values)})")
        print(f"| **{arm}** | mean ± std | " + " | ".join(cells) + " |")

    if len(arms) == 2:
        (a, sa), (b, sb) = summaries.items()
        print()
        for name in ("alone, parabola", "cascade"):
            if name not in sa or name not in sb:
                continue
            gain = sb[name][0] - sa[name][0]
            bar = 2 * max(sa[name][1], sb[name][1])
            n = min(sa[name][2], sb[name][2])
            verdict = ("needs two seeds of each arm" if n < 2
                       else "passes" if gain > bar else "does not pass")
            print(f"{name}: {a} better than {b} by {gain:+.3f} mm; twice the larger seed std "
                  f"{bar:.3f} mm: {verdict}")
            # the same seed draws the same validation films and initial weights in both arms
            seeds = sorted(set(by_seed[a]) & set(by_seed[b]) - {None})
            paired = [by_seed[b][k][name] - by_seed[a][k][name] for k in seeds
                      if by_seed[a][k][name] is not None and by_seed[b][k][name] is not None]
            if paired:
                m, s = mean_std(paired)
                print(f"  paired by seed ({', '.join(map(str, seeds))}): "
                      + ", ".join(f"{d:+.3f}" for d in paired) + f" mm; mean {m:+.3f} ± {s:.3f}")


if __name__ == "__main__":
    main()
