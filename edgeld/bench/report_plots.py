"""The report's plots, each readable on its own: every point or bar is named (legend or axis), each
axis says which way is better and starts at 0 (so a 0.04 mm difference looks like one), and
latency carries the spread of its runs and repeats as error bars. matplotlib is imported inside
the functions: it is an optional dependency (DESIGN.md)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from edgeld.bench.report_rows import SDR_RADII, Row, front_rows, per_landmark_choice
from edgeld.core.errors import missing_extra
from edgeld.core.files import atomic_write_bytes

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "p", "h", "<", ">")  # filled: thin ones vanish
SPREAD_NOTE = "Error bars: lowest to highest p50 over the runs and --repeat repeats of each artifact."


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on a device or CI
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise missing_extra("matplotlib", "dev") from exc
    return plt


def render_plots(rows: list[Row], out: Path) -> list[Path]:
    """Write every plot the rows allow into `out`; returns their paths in reading order."""
    plt = _pyplot()
    styles = {row.label: _style(i) for i, row in enumerate(rows)}
    scored = [r for r in rows if r.mre_mm is not None]
    where = _devices(rows)
    plots = []
    if scored:
        plots.append(_accuracy_vs_latency(plt, scored, styles, where, out))
    if any(r.first.get("sdr_percent") for r in scored):
        plots.append(_sdr(plt, [r for r in scored if r.first.get("sdr_percent")], where, out))
    chosen = per_landmark_choice(rows)
    if chosen:
        plots.append(_per_landmark(plt, chosen, styles, out))
    if any((r.first.get("cost") or {}).get("bytes") for r in rows):
        plots.append(_size_and_compute(plt, rows, styles, out))
    return plots


def _style(i: int) -> dict[str, Any]:
    """The same colour and marker for an artifact in every plot; (colour, marker) pairs stay
    distinct for up to 110 artifacts (tab10's colours are easier to tell apart than tab20's
    light/dark pairs)."""
    import matplotlib

    return {"color": matplotlib.colormaps["tab10"](i % 10), "marker": MARKERS[i % len(MARKERS)]}


def _devices(rows: list[Row]) -> str:
    names = list(dict.fromkeys(r.device for r in rows))
    return names[0] if len(names) == 1 else "several devices (see the labels)"


def _latency_axis_label(rows: list[Row]) -> str:
    kinds = {r.end_to_end for r in rows}
    what = ("end-to-end p50 (image in, mm out)" if kinds == {True} else "model-only p50"
            if kinds == {False} else "end-to-end p50 where measured, else model-only")
    return f"latency, ms: {what} (lower is better)"


def _accuracy_vs_latency(plt, rows: list[Row], styles: dict, where: str, out: Path) -> Path:
    """MRE against latency with the Pareto front; both axes from 0."""
    import textwrap

    fig, ax = plt.subplots(figsize=(9, 5))
    for row in rows:
        low, high = row.spread_ms
        x = row.latency_ms
        # white edges keep markers that nearly coincide (the student variants) apart
        ax.errorbar([x], [row.mre_mm], xerr=[[x - low], [high - x]], linestyle="none",
                    markersize=8, markeredgecolor="white", markeredgewidth=0.6, capsize=3,
                    alpha=0.9, label=row.label, **styles[row.label])
    front = front_rows(rows)
    for k, device in enumerate(dict.fromkeys(r.device for r in front)):  # one front per device
        line = [r for r in front if r.device == device]
        ax.plot([r.latency_ms for r in line], [r.mre_mm for r in line], "--", color="0.5", zorder=0,
                label=None if k else "Pareto front: nothing else is both faster and more accurate")
    ax.set_xlim(0, max(r.spread_ms[1] for r in rows) * 1.08)
    ax.set_ylim(0, max(r.mre_mm for r in rows) * 1.25)
    ax.set_xlabel(_latency_axis_label(rows))
    ax.set_ylabel("MRE, mm (lower is better)")
    ax.set_title(f"Accuracy versus latency on {where}")
    ax.annotate("better", xy=(0.03, 0.05), xytext=(0.15, 0.2), xycoords="axes fraction",
                arrowprops={"arrowstyle": "->", "color": "0.4"}, color="0.4", fontsize=9)
    ax.grid(alpha=0.3)
    note = textwrap.fill(f"{SPREAD_NOTE} Both axes start at 0, so a difference of a few "
                         "hundredths of a mm looks as small as it is.", 110)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7, ncol=1, frameon=False,
              title=note, title_fontsize=7)
    return _save(plt, fig, out / "accuracy_vs_latency.png")


def _sdr(plt, rows: list[Row], where: str, out: Path) -> Path:
    """SDR at each radius, per artifact: horizontal bars from 0 to 100 %."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(rows)))
    colours = plt.get_cmap("Blues")(np.linspace(0.35, 0.9, len(SDR_RADII)))
    height = 0.8 / len(SDR_RADII)
    for k, radius in enumerate(SDR_RADII):
        ys = [i + (k - (len(SDR_RADII) - 1) / 2) * height for i in range(len(rows))]
        values = [r.first["sdr_percent"][radius] for r in rows]
        bars = ax.barh(ys, values, height=height, color=colours[k], label=f"within {float(radius):g} mm")
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=2)
    ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("SDR, % of landmarks within the radius (higher is better)")
    ax.set_title(f"Successful detection rate on {where}, {_split_text(rows)}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(SDR_RADII), fontsize=8,
              frameon=False)
    return _save(plt, fig, out / "sdr.png")


def _split_text(rows: list[Row]) -> str:
    """Which split and reference the accuracy figures come from, as the records say."""
    pairs = sorted({(str(r.first.get("split")), str(r.first.get("reference"))) for r in rows})
    return "; ".join(f"split {s}, {ref} reference" for s, ref in pairs)


def _per_landmark(plt, rows: list[Row], styles: dict, out: Path) -> Path:
    """Per-landmark MRE of a few artifacts side by side, with the 2 mm line."""
    names = [p["name"] for p in rows[0].first["per_landmark"]]
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(rows)
    for k, row in enumerate(rows):
        xs = [i + (k - (len(rows) - 1) / 2) * width for i in range(len(names))]
        values = {p["name"]: p["mre_mm"] for p in row.first["per_landmark"]}
        ax.bar(xs, [values.get(n, float("nan")) for n in names], width=width,
               color=styles[row.label]["color"], label=f"{row.label}, mean {row.mre_mm:.3f} mm")
    ax.axhline(2.0, color="tab:red", linestyle="--", linewidth=1,
               label="2 mm: the usual clinical acceptance radius")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, None)
    ax.set_ylabel("MRE, mm (lower is better)")
    ax.set_title(f"Per-landmark error on {_devices(rows)}, {_split_text(rows)}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, title_fontsize=7,
              title="Shown: the Pareto front of accuracy versus latency,\nplus any artifact more "
                    "than 0.02 mm in mean MRE\nfrom those (near-copies are left out)")
    return _save(plt, fig, out / "per_landmark.png")


def _size_and_compute(plt, rows: list[Row], styles: dict, out: Path) -> Path:
    """MRE, artifact size and MACs per image side by side, one bar per artifact, all from 0."""
    panels = (("MRE, mm", lambda r: r.mre_mm, "%.3f"),
              ("artifact size, MB", lambda r: _cost(r, "bytes", 1e6), "%.2f"),
              ("GMACs per image", lambda r: _cost(r, "macs", 1e9), "%.2f"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 1.2 + 0.4 * len(rows)), sharey=True)
    ys = range(len(rows))
    for ax, (name, value, fmt) in zip(axes, panels):
        values = [value(r) for r in rows]
        bars = ax.barh(ys, [v or 0 for v in values], color=[styles[r.label]["color"] for r in rows])
        ax.bar_label(bars, labels=[fmt % v if v is not None else _why_missing(r)
                                   for r, v in zip(rows, values)], fontsize=6, padding=2)
        ax.set_xlim(0, max((v for v in values if v is not None), default=1) * 1.3)
        ax.set_xlabel(f"{name} (lower is better)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(list(ys), [r.label for r in rows], fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle(f"Accuracy, size and compute on {_devices(rows)}")
    return _save(plt, fig, out / "size_and_compute.png")


def _why_missing(row: Row) -> str:
    """What the record says about a figure it lacks (untrained weights are timed only)."""
    why = row.first.get("accuracy")
    return why if isinstance(why, str) else "not measured"


def _cost(row: Row, key: str, scale: float) -> float | None:
    value = (row.first.get("cost") or {}).get(key)
    return None if value is None else value / scale


def _save(plt, fig, path: Path) -> Path:
    """PNG written atomically (a reader never sees half a file), figure closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    plt.close(fig)
    return path
