"""Benchmark records -> report rows: one row per artifact measured on one device, repeats merged.

Several results files often hold the same artifact (a walking-skeleton run and a later peers run
of `out/isbi2015-student.onnx`, say). Plotted as separate points they look like different choices;
here they become one row whose latency is the median of the runs' p50s and whose spread is the
lowest to highest p50 of every run and every `--repeat` inside it."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The SDR radii every evaluate record carries, in mm (DESIGN.md "Metrics").
SDR_RADII = ("2.0", "2.5", "3.0", "4.0")


@dataclass
class Row:
    """One artifact x backend x precision x batch on one device, over every run that measured it."""

    records: list[dict[str, Any]]
    device: str
    label: str = ""
    end_to_end: bool = True
    p50s: list[float] = field(default_factory=list)  # every run's and every repeat's p50, ms

    @property
    def first(self) -> dict[str, Any]:
        return self.records[0]

    @property
    def latency_ms(self) -> float:
        """Median over runs of each run's p50 (a run's p50 is already its median repeat)."""
        key = "end_to_end_ms" if self.end_to_end else "latency_ms"
        return statistics.median(r[key]["p50"] for r in self.records)

    @property
    def spread_ms(self) -> tuple[float, float]:
        """Lowest and highest p50 seen for this row, over runs and repeats."""
        return min(self.p50s), max(self.p50s)

    @property
    def images_per_s(self) -> float:
        """Images per second at the row's latency: one image after another (end-to-end, batch 1)
        or one batch after another (model-only)."""
        return 1000.0 * (1 if self.end_to_end else self.first["batch"]) / self.latency_ms

    @property
    def mre_mm(self) -> float | None:
        return self.first.get("mre_mm")

    @property
    def sources(self) -> list[str]:
        return sorted({r["source"] for r in self.records})


def device_name(record: dict[str, Any]) -> str:
    """The hardware a record ran on, as a reader names it: the Jetson module, the GPU for a
    GPU backend, else the CPU model and its logical CPU count."""
    facts = record.get("device") or {}
    jetson = facts.get("jetson")
    if jetson:
        return jetson.get("module") or "Jetson (module unknown)"
    gpus = facts.get("gpus") or []
    if gpus and any(k in record.get("backend", "") for k in ("cuda", "tensorrt")):
        return gpus[0].get("name") or "GPU"
    cpu, count = facts.get("cpu") or "unknown CPU", facts.get("cpu_count")
    return f"{cpu}, {count} CPUs" if count else cpu


def model_name(model: str) -> str:
    """File names of a model (or of each stage of a cascade "a + b") without their folders."""
    return " + ".join(Path(part).name for part in model.split(" + "))


def _artifact_key(record: dict[str, Any]) -> tuple:
    """What makes two records the same measurement target: the artifact (path, bytes and its
    accuracy: a re-export under the same name changes one of them), how it ran, where, and on
    which split and reference its accuracy was taken."""
    mre = record.get("mre_mm")
    return (record["model"], (record.get("cost") or {}).get("bytes"), record["backend"],
            record["precision"], record["batch"], device_name(record), "end_to_end_ms" in record,
            record.get("split"), record.get("reference"), None if mre is None else round(mre, 6))


def _p50s(record: dict[str, Any], key: str) -> list[float]:
    stats = record[key]
    return list(stats.get("p50_repeats") or [stats["p50"]])


def merge_runs(records: list[dict[str, Any]]) -> list[Row]:
    """One Row per distinct artifact measurement, in the order the records first name them."""
    rows: dict[tuple, Row] = {}
    for record in records:
        key = _artifact_key(record)
        if key not in rows:
            rows[key] = Row(records=[], device=device_name(record),
                            end_to_end="end_to_end_ms" in record)
        row = rows[key]
        row.records.append(record)
        row.p50s += _p50s(record, "end_to_end_ms" if row.end_to_end else "latency_ms")
    merged = list(rows.values())
    _set_labels(merged)
    return merged


def _set_labels(rows: list[Row]) -> None:
    """Short labels (file name, precision, backend); where two rows would read the same, the
    device and then the results folder tell them apart."""
    for row in rows:
        r = row.first
        batch = f", batch {r['batch']}" if r["batch"] != 1 else ""
        row.label = f"{model_name(r['model'])} ({r['precision']}, {r['backend']}{batch})"
    for extra in (lambda row: row.device, lambda row: Path(row.sources[0]).parent.name):
        for group in _same_label(rows):
            if len({extra(row) for row in group}) > 1:  # only a suffix that tells them apart
                for row in group:
                    row.label += f" @ {extra(row)}"
    for group in _same_label(rows):  # last resort: plots key colours and legends by label
        for n, row in enumerate(group[1:], start=2):
            row.label += f" #{n}"


def _same_label(rows: list[Row]) -> list[list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.label, []).append(row)
    return [g for g in groups.values() if len(g) > 1]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (latency, error): nothing is both faster and better."""
    front = []
    for i, (lat, err) in enumerate(points):
        if not any((l2 <= lat and e2 <= err) and (l2 < lat or e2 < err)
                   for j, (l2, e2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def rounded_mre(row: Row) -> float:
    """MRE to the micrometre: float noise between backends must not decide dominance or rank."""
    return round(row.mre_mm, 3)


def front_rows(rows: list[Row]) -> list[Row]:
    """Per device, the rows with accuracy that no other row of that device beats on both latency
    and MRE, fastest first (a GPU's latency says nothing about a Jetson's choices)."""
    front = []
    for device in dict.fromkeys(r.device for r in rows):
        scored = [r for r in rows if r.mre_mm is not None and r.device == device]
        front += [scored[i] for i in pareto_front([(r.latency_ms, rounded_mre(r)) for r in scored])]
    return front


def per_landmark_choice(rows: list[Row], limit: int = 5, apart_mm: float = 0.02) -> list[Row]:
    """Rows worth comparing landmark by landmark: the Pareto front, then, fastest first, any
    row whose MRE lies more than `apart_mm` from every row already chosen (a near-copy of a
    chosen row adds 19 bars and no information)."""
    chosen = [r for r in front_rows(rows) if r.first.get("per_landmark")][:limit]
    others = sorted((r for r in rows if r.mre_mm is not None and r.first.get("per_landmark")
                     and r not in chosen), key=lambda r: r.latency_ms)
    for row in others:
        if len(chosen) < limit and all(abs(row.mre_mm - c.mre_mm) > apart_mm for c in chosen):
            chosen.append(row)
    return chosen
