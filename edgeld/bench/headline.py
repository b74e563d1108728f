"""The report's headline: which artifact to ship on each device, and why, from the table alone.

A manager reads one or two sentences: the most accurate artifact within a latency budget, the
fastest within an accuracy budget, or both. Budgets are the user's; without any the headline
names the two ends of the trade-off and asks for a budget rather than guessing one."""
from __future__ import annotations

from edgeld.bench.report_rows import Row, rounded_mre


def headline(rows: list[Row], latency_budget_ms: float | None = None,
             mre_budget_mm: float | None = None) -> list[str]:
    """One paragraph per device (in the order the rows name devices)."""
    devices = list(dict.fromkeys(r.device for r in rows))
    return [_device_headline([r for r in rows if r.device == d], d, latency_budget_ms,
                             mre_budget_mm) for d in devices]


def _figures(row: Row) -> str:
    """The figures a choice rests on."""
    kind = "end-to-end" if row.end_to_end else "model-only"
    sdr = row.first.get("sdr_percent", {}).get("2.0")
    sdr_text = f", SDR@2mm {sdr:.1f} %" if sdr is not None else ""
    return f"MRE {row.mre_mm:.3f} mm{sdr_text}, {kind} p50 {row.latency_ms:.1f} ms"


def _describe(row: Row) -> str:
    return f"{row.label}, with {_figures(row)}"


def _over_budget_note(row: Row, budget_ms: float) -> str:
    """A choice that fits the budget at its median but not in every run says so: on a noisy
    machine the budget is not safely met."""
    high = row.spread_ms[1]
    return f"; but one run or repeat measured {high:.1f} ms, over the budget" if high > budget_ms else ""


def _device_headline(rows: list[Row], device: str, latency_budget_ms: float | None,
                     mre_budget_mm: float | None) -> str:
    scored = [r for r in rows if r.mre_mm is not None]
    if not scored:
        fastest = min(rows, key=lambda r: r.latency_ms)
        return (f"On {device} no row carries accuracy (benchmark with --data), so none can be "
                f"recommended; the fastest is {fastest.label} at {fastest.latency_ms:.1f} ms.")
    n = f"{len(scored)} measured artifact{'s' if len(scored) != 1 else ''}"
    most_accurate = min(scored, key=lambda r: (rounded_mre(r), r.latency_ms))
    fastest = min(scored, key=lambda r: (r.latency_ms, rounded_mre(r)))
    if latency_budget_ms is None and mre_budget_mm is None:
        return (f"On {device}, the most accurate of {n} is {_describe(most_accurate)}; the fastest "
                f"is {_describe(fastest)}. Give --latency-budget-ms or --mre-budget-mm to choose.")
    sentences = []
    if latency_budget_ms is not None:
        sentences.append(_within_latency(scored, device, n, latency_budget_ms, mre_budget_mm, fastest))
    if mre_budget_mm is not None:
        sentences.append(_within_mre(scored, device, n, mre_budget_mm, most_accurate,
                                     leads=latency_budget_ms is None))
    return " ".join(sentences)


def _within_latency(scored: list[Row], device: str, n: str, budget_ms: float,
                    mre_budget_mm: float | None, fastest: Row) -> str:
    """The most accurate row whose p50 fits the latency budget, checked against the MRE budget."""
    within = [r for r in scored if r.latency_ms <= budget_ms]
    if not within:
        return (f"On {device}, no artifact meets the {budget_ms:g} ms latency budget: the fastest "
                f"is {_describe(fastest)}.")
    pick = min(within, key=lambda r: (rounded_mre(r), r.latency_ms))
    if mre_budget_mm is not None and pick.mre_mm > mre_budget_mm:
        return (f"On {device}, no artifact meets both budgets: the most accurate within "
                f"{budget_ms:g} ms is {_describe(pick)}, over the {mre_budget_mm:g} mm MRE budget.")
    return (f"On {device}, ship {pick.label}: the most accurate of {n} within the {budget_ms:g} ms "
            f"latency budget ({_figures(pick)}{_over_budget_note(pick, budget_ms)}).")


def _within_mre(scored: list[Row], device: str, n: str, budget_mm: float, most_accurate: Row,
                leads: bool) -> str:
    """The fastest row whose MRE fits the accuracy budget; it leads the headline when no latency
    budget was given, else it is the alternative for a reader who cares more about speed."""
    within = [r for r in scored if r.mre_mm <= budget_mm]
    if not within:
        return (f"No artifact reaches the {budget_mm:g} mm MRE budget: the most accurate is "
                f"{_describe(most_accurate)}.")
    pick = min(within, key=lambda r: (r.latency_ms, rounded_mre(r)))
    if leads:
        return (f"On {device}, ship {pick.label}: the fastest of {n} within the {budget_mm:g} mm "
                f"MRE budget ({_figures(pick)}).")
    return f"The fastest within the {budget_mm:g} mm MRE budget is {_describe(pick)}."
