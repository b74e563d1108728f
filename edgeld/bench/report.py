"""`edgeld report`: benchmark results -> a cost-effectiveness report (report.md + PNG plots).

This module writes the text: the headline, the measurements table and, given a devices table,
the cost per image. Rows (repeats merged) come from report_rows, the headline from headline, the
plots from report_plots, prices and power from device_cost."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from edgeld.bench.device_cost import DeviceTable, assign, load_devices, row_cost
from edgeld.bench.headline import headline
from edgeld.bench.report_plots import SPREAD_NOTE, render_plots
from edgeld.bench.report_rows import Row, front_rows, merge_runs, model_name, pareto_front
from edgeld.core.errors import UserError
from edgeld.core.files import atomic_write_bytes, make_parent_folder

__all__ = ["load_records", "render_report", "pareto_front", "model_name"]


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


def _check_budget(value: float | None, option: str) -> None:
    if value is not None and not value > 0:
        raise UserError(f"{option} must be a positive number (got {value})")


def render_report(records: list[dict[str, Any]], out_dir: str | Path,
                  latency_budget_ms: float | None = None, mre_budget_mm: float | None = None,
                  devices_path: str | Path | None = None, device: str | None = None) -> Path:
    """Write report.md and its plots into out_dir; returns the markdown path.

    Every input is checked before anything is written, so a bad budget or devices file leaves
    no partial report behind."""
    _check_budget(latency_budget_ms, "--latency-budget-ms")
    _check_budget(mre_budget_mm, "--mre-budget-mm")
    if device is not None and devices_path is None:
        raise UserError("--device names an entry of the devices table: give --devices PATH too")
    table = load_devices(devices_path) if devices_path is not None else None
    rows = merge_runs(records)
    costed = assign(rows, table, device) if table is not None else None
    out = Path(out_dir)
    make_parent_folder(out / "report.md")  # a UserError when a file is in the way
    plots = render_plots(rows, out)
    lines = ["# edgeld cost-effectiveness report", "", "## Headline", ""]
    lines += _budget_line(latency_budget_ms, mre_budget_mm)
    for paragraph in headline(rows, latency_budget_ms, mre_budget_mm):
        lines += [paragraph, ""]
    lines += _about(rows)
    lines += [f"![{p.stem}]({p.name})" for p in plots] + [""]
    lines += ["## Measurements", ""] + _table(rows)
    if table is not None:
        lines += ["", "## Cost per image", ""] + _cost_section(costed, table)
    lines += ["", "Sources: " + ", ".join(sorted({f"`{r['source']}`" for r in records}))]
    md = out / "report.md"
    atomic_write_bytes(md, ("\n".join(lines) + "\n").encode())
    return md


def _budget_line(latency_budget_ms: float | None, mre_budget_mm: float | None) -> list[str]:
    given = [f"latency {latency_budget_ms:g} ms" if latency_budget_ms is not None else None,
             f"MRE {mre_budget_mm:g} mm" if mre_budget_mm is not None else None]
    given = [g for g in given if g]
    return [f"Budgets given: {', '.join(given)}." if given else "No budget given.", ""]


def _about(rows: list[Row]) -> list[str]:
    """How to read the numbers: which latency, what a merged row is, the Pareto front."""
    repeated = [r for r in rows if len(r.records) > 1]
    lines = ["Latency is end-to-end p50 (decoded image in, landmarks in mm out) at batch 1 where "
             "measured, else model-only p50. Every figure comes from the results files listed at "
             "the end, on the device named in its row. " + SPREAD_NOTE, ""]
    if repeated:
        lines += [f"{len(repeated)} artifact(s) were measured in more than one results file (same "
                  "file, size and accuracy): each is one row, its latency the median of the runs' "
                  "p50s, its runs listed in the table.", ""]
    front = front_rows(rows)
    if front:
        lines += ["Pareto front (no other row on the same device is both faster and more accurate): "
                  + ", ".join(r.label for r in front), ""]
    return lines


def _folders(row: Row) -> str:
    return ", ".join(Path(s).parent.name for s in row.sources)


def _table(rows: list[Row]) -> list[str]:
    """One line per artifact on a device, every run of it folded in."""
    lines = ["| model | device | latency p50 ms | p50 range ms | model-only p50 ms | MRE mm "
             "| SDR@2mm % | SDR@4mm % | params | GMACs | MB | runs (results folders) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        r, cost = row.first, row.first.get("cost") or {}
        low, high = row.spread_ms
        sdr = r.get("sdr_percent") or {}
        model_only = statistics.median(x["latency_ms"]["p50"] for x in row.records)
        cells = [row.label, row.device, f"{row.latency_ms:.2f}", f"{low:.2f}-{high:.2f}",
                 f"{model_only:.2f}", f"{row.mre_mm:.3f}" if row.mre_mm is not None else "-",
                 f"{sdr['2.0']:.1f}" if "2.0" in sdr else "-",
                 f"{sdr['4.0']:.1f}" if "4.0" in sdr else "-",
                 f"{cost['params']:,}" if cost.get("params") else "-",
                 f"{cost['macs'] / 1e9:.2f}" if cost.get("macs") else "-",
                 f"{cost['bytes'] / 1e6:.2f}" if cost.get("bytes") else "-",
                 f"{len(row.records)} ({_folders(row)})"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cost_section(costed: list[tuple[Row, Any, str]], table: DeviceTable) -> list[str]:
    """Per costed row: images/s, images/s per unit of price, energy and cost per 1,000 images."""
    cur = table.currency
    kwh = (f"electricity at {table.electricity_per_kwh:g} {cur}/kWh" if table.electricity_per_kwh
           else "no electricity price in the file, so bought devices' cost leaves energy out")
    lines = [f"Prices and power draws come from `{table.path}`: figures a user typed in, not "
             "measurements (energy is measured only where marked). Images/s = 1000 / the latency "
             "p50 above, images one after another. Bought hardware is written off over its "
             f"`lifetime_h` of back-to-back inference; {kwh}. Rented hardware: the rent of the "
             "hours 1,000 images take.", "",
             f"| model | charged to (how) | price {cur} | power W | images/s | images/s per price "
             f"| energy per image J | cost per 1,000 images {cur} |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    skipped = []
    for row, device, how in costed:
        if device is None:
            skipped.append(f"{row.label} ({row.device})")
            continue
        c = row_cost(row, device, table)
        price = (f"{device.price:,.0f}" if device.price is not None
                 else f"{device.price_per_hour:g}/h")
        per_price = (f"{c['images_per_s_per_price'] * 1000:.1f} per 1,000 {cur}"
                     if device.price is not None else f"{c['images_per_s_per_price']:.0f} per {cur}/h")
        energy = f"{c['energy_j']:.3f} ({'measured' if c['energy_measured'] else 'table power'})"
        lines.append(f"| {row.label} | {device.name} ({how}) | {price} | {device.power_w:g} "
                     f"| {c['images_per_s']:.1f} | {per_price} | {energy} "
                     f"| {c['cost_per_1000']:.3g} |")
    if skipped:
        lines += ["", "Not costed (no device in the table names their device; `--device NAME` "
                  "charges every row to one entry): " + "; ".join(skipped)]
    return lines
