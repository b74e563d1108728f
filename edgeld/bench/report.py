"""`edgeld report`: benchmark results -> a cost-effectiveness report (markdown + PNG plots)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeld.core.errors import UserError, missing_extra
from edgeld.core.files import atomic_write_bytes, make_parent_folder


def load_records(paths: list[str]) -> list[dict[str, Any]]:
    """All records of the given results.json files, each tagged with its source file."""
    records = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            batch = data["records"]
        except FileNotFoundError:
            raise UserError(f"results file not found: {path}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path} is not an edgeld benchmark results.json ({exc})") from None
        records += [{**r, "source": str(path)} for r in batch]
    if not records:
        raise UserError("the results files hold no records")
    return records


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (latency, error): nothing is both faster and better."""
    front = []
    for i, (lat, err) in enumerate(points):
        if not any((l2 <= lat and e2 <= err) and (l2 < lat or e2 < err)
                   for j, (l2, e2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _name(model: str) -> str:
    """File names of a model (or of each stage of a cascade "a + b") without their folders."""
    return " + ".join(Path(part).name for part in model.split(" + "))


def _label(r: dict[str, Any]) -> str:
    return f"{_name(r['model'])} [{r['backend']}, {r['precision']}, b{r['batch']}]"


def _latency(r: dict[str, Any]) -> float:
    """End-to-end p50 where measured (what a device sees), else model-only p50."""
    return (r.get("end_to_end_ms") or r["latency_ms"])["p50"]


def render_report(records: list[dict[str, Any]], out_dir: str | Path) -> Path:
    """Write report.md and its plots into out_dir; returns the markdown path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise missing_extra("matplotlib", "dev") from exc
    out = Path(out_dir)
    make_parent_folder(out / "report.md")  # a UserError when a file is in the way
    with_acc = [r for r in records if "mre_mm" in r]
    lines = ["# edgeld cost-effectiveness report", "",
             "Latency is end-to-end p50 (decoded image in, landmarks in mm out) at batch 1 where "
             "measured, else model-only p50. Every figure comes from the results files listed at "
             "the end, on the device named in its row.", ""]
    plots = []
    if with_acc:
        # MRE to the micrometre: float noise between backends must not decide dominance
        pts = [(_latency(r), round(r["mre_mm"], 3)) for r in with_acc]
        front = pareto_front(pts)
        plots = _accuracy_plots(plt, with_acc, pts, front, out)
        lines += ["Points in the plots: " + "; ".join(f"{i + 1} = {_label(r)}"
                                                      for i, r in enumerate(with_acc)), "",
                  "Pareto front (no other row is both faster and more accurate): "
                  + ", ".join(_label(with_acc[i]) for i in front), ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots] + [""]
    lines += _table(records)
    lines += ["", "Sources: " + ", ".join(sorted({f"`{r['source']}`" for r in records}))]
    md = out / "report.md"
    atomic_write_bytes(md, ("\n".join(lines) + "\n").encode())
    return md


def _accuracy_plots(plt, with_acc: list[dict[str, Any]], pts: list[tuple[float, float]],
                    front: list[int], out: Path) -> list[Path]:
    """Accuracy versus latency (with the Pareto front), versus size and compute, and the most
    accurate row's per-landmark errors; points are numbered as in the markdown's key."""
    plots = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="tab:blue")
    for i, (x, y) in enumerate(pts):  # numbers, keyed in the markdown: labels would overlap
        ax.annotate(str(i + 1), (x, y), fontsize=8, xytext=(4, 3), textcoords="offset points")
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="tab:orange",
            label="Pareto front")
    ax.set_xlabel("latency p50 (ms)")
    ax.set_ylabel("MRE (mm)")
    ax.set_title("Accuracy versus latency")
    ax.legend()
    plots.append(_save(fig, out / "accuracy_vs_latency.png"))
    sized = [r for r in with_acc if r.get("cost", {}).get("bytes")]
    if sized:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, key, unit in ((axes[0], "bytes", "artifact size (MB)"),
                              (axes[1], "macs", "GMACs per image")):
            scale = 1e6 if key == "bytes" else 1e9
            keep = [(with_acc.index(r) + 1, r) for r in sized if r["cost"].get(key)]
            xs = [r["cost"][key] / scale for _, r in keep]
            ys = [r["mre_mm"] for _, r in keep]
            ax.scatter(xs, ys, color="tab:green")
            for (n, _), x, y in zip(keep, xs, ys):
                ax.annotate(str(n), (x, y), fontsize=8, xytext=(4, 3), textcoords="offset points")
            ax.set_xlabel(unit)
            ax.set_ylabel("MRE (mm)")
        fig.suptitle("Accuracy versus size and compute")
        plots.append(_save(fig, out / "accuracy_vs_size.png"))
    best = min(with_acc, key=lambda r: r["mre_mm"])
    if best.get("per_landmark"):
        fig, ax = plt.subplots(figsize=(9, 4))
        names = [p["name"] for p in best["per_landmark"]]
        ax.bar(range(len(names)), [p["mre_mm"] for p in best["per_landmark"]], color="tab:purple")
        ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
        ax.set_ylabel("MRE (mm)")
        ax.set_title(f"Per-landmark error: {_label(best)}")
        fig.tight_layout()
        plots.append(_save(fig, out / "per_landmark.png"))
    return plots


def _table(records: list[dict[str, Any]]) -> list[str]:
    """The markdown table: one row per record, cost and accuracy where measured."""
    lines = ["| model | backend | precision | batch | latency p50 ms | model-only p50 ms | MRE mm "
             "| SDR@2mm % | params | GMACs | MB | device |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in records:
        cost = r.get("cost", {})
        cells = [_name(r["model"]), r["backend"], r["precision"], str(r["batch"]),
                 f"{_latency(r):.2f}", f"{r['latency_ms']['p50']:.2f}",
                 f"{r['mre_mm']:.3f}" if "mre_mm" in r else "-",
                 f"{r['sdr_percent']['2.0']:.1f}" if "sdr_percent" in r else "-",
                 f"{cost['params']:,}" if cost.get("params") else "-",
                 f"{cost['macs'] / 1e9:.2f}" if cost.get("macs") else "-",
                 f"{cost['bytes'] / 1e6:.2f}" if cost.get("bytes") else "-",
                 r.get("device", {}).get("cpu", "?")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _save(fig, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
