"""`edgeld benchmark`: latency (model-only and end-to-end) and, with data, accuracy per artifact."""
from __future__ import annotations

from typing import Any

import numpy as np

from edgeld.bench.latency import measure_latency, summarize_ms
from edgeld.bench.tegrastats import PowerMonitor
from edgeld.data import BUNDLED_SAMPLES, LandmarkDataset, load_grayscale, open_dataset
from edgeld.runtime import LandmarkDetector


def sample_film() -> np.ndarray:
    """A real decoded film for end-to-end timing when no data is given: the first bundled ISBI
    test1 sample (2400x1935, 8-bit). Random pixels would be refused by the quality gate, and a
    refused film skips the refiner, so a cascade would be timed as its first stage alone."""
    return load_grayscale(open_dataset(BUNDLED_SAMPLES).split("demo")[0].path)


def benchmark_detector(detector: LandmarkDetector, model: str, batch: int = 1,
                       image: np.ndarray | None = None, warmup_s: float = 1.0,
                       min_seconds: float = 3.0, min_runs: int = 50,
                       power: PowerMonitor | None = None) -> dict[str, Any]:
    """One record: model-only latency on a preprocessed batch, end-to-end latency on an image
    (`sample_film` by default; none when the detector refuses the image: the record then says
    why under "end_to_end_refused"); with `power` (a Jetson), tegrastats power over each timed
    phase and energy per image."""
    image = sample_film() if image is None else image
    tensor, _ = detector.preprocess(image)
    inputs = np.repeat(tensor[None], batch, axis=0)
    reset_peak_rss()
    during = power.sampler if power is not None else None
    model_only = measure_latency(lambda: detector.runner.infer(inputs), warmup_s, min_runs, min_seconds,
                                 during=during)
    power_model = _power(power, model_only, batch)
    record = {
        "model": model,
        "backend": detector.runner.name,
        "precision": getattr(detector.runner, "precision", None)
        or (detector.manifest.artifact.precision if detector.manifest else "fp32"),
        "batch": batch,
        "input_size": [detector.io.input_height, detector.io.input_width],
        # with a refinement stage, model-only time is the first stage; end-to-end covers both
        "cascade": detector.refiner is not None,
        "latency_ms": model_only,
        "throughput_ips": batch * 1000.0 / model_only["mean"],
        # how each stage's runtime was set up (ONNX Runtime: threads, spinning, optimisation...)
        "runtime_settings": [getattr(stage.runner, "settings", None) for stage in _stages(detector)],
    }
    refused = _refusal(detector, image) if batch == 1 else None
    if refused:
        # a refused film skips the refiners: its time is not the path's time
        record["end_to_end_refused"] = refused
    elif batch == 1:
        record["end_to_end_ms"] = measure_latency(lambda: detector.detect(image), warmup_s,
                                                  min_runs, min_seconds, during=during)
        if power is not None:
            record["power_end_to_end"] = _power(power, record["end_to_end_ms"], 1)
    if power is not None:
        record["power_model_only"] = power_model
        record["end_to_end_input"] = f"decoded {image.dtype} image {image.shape[0]}x{image.shape[1]}"
    if getattr(getattr(detector.runner, "device", None), "type", None) == "cuda":
        record.update(cuda_breakdown(detector.runner, inputs, warmup_s, min_runs, min_seconds))
    record["peak_host_memory_mb"] = peak_rss_mb()
    return record


def _power(power: PowerMonitor | None, latency: dict[str, Any], batch: int) -> dict | None:
    """Pop the sampler a timed phase ran under and summarize it per image."""
    sampler = latency.pop("during", None)
    if power is None or sampler is None:
        return None
    return power.summarize(sampler, latency["runs"] * batch, latency["seconds"])


def cuda_breakdown(runner, inputs: np.ndarray, warmup_s: float, min_runs: int,
                   min_seconds: float) -> dict[str, Any]:
    """Device compute and host<->device copies timed apart with CUDA events, plus GPU memory."""
    import time

    import torch

    torch.cuda.reset_peak_memory_stats()
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        runner.cuda_event_times(inputs)
    samples: dict[str, list[float]] = {"h2d": [], "compute": [], "d2h": []}
    start = time.perf_counter()
    while len(samples["compute"]) < min_runs or time.perf_counter() - start < min_seconds:
        for key, value in runner.cuda_event_times(inputs).items():
            samples[key].append(value)
    summary = {k: summarize_ms(np.array(v)) for k, v in samples.items()}
    return {"device_ms": summary["compute"], "copy_ms": {"h2d": summary["h2d"], "d2h": summary["d2h"]},
            "peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20}


def merge_repeat(record: dict[str, Any], again: dict[str, Any]) -> None:
    """Fold a repeated measurement into the first one's record.

    Every repeat's statistics are kept (`repeats`); the record's own figures become those of the
    median repeat by p50 (with three or more repeats, one disturbed block cannot move them), and
    `p50_spread_pct` says how far the repeats' p50s lie apart ((max - min) / min)."""
    for key in ("latency_ms", "end_to_end_ms", "device_ms"):
        if key not in record:
            continue
        stats = record[key]
        repeats = stats.pop("repeats", None) or [dict(stats)]
        repeats.append({k: v for k, v in again[key].items() if k != "repeats"})
        median = sorted(repeats, key=lambda r: r["p50"])[(len(repeats) - 1) // 2]
        p50s = [r["p50"] for r in repeats]
        stats.clear()
        stats.update(median)
        stats.update(repeats=repeats, p50_repeats=p50s,
                     p50_spread_pct=100.0 * (max(p50s) - min(p50s)) / min(p50s))
    if "latency_ms" in record:
        record["throughput_ips"] = record["batch"] * 1000.0 / record["latency_ms"]["mean"]
    record["peak_host_memory_mb"] = max(filter(None, (record.get("peak_host_memory_mb"),
                                                      again.get("peak_host_memory_mb"))), default=None)


def reset_peak_rss() -> bool:
    """Reset the process's peak resident set size (Linux: write 5 to /proc/self/clear_refs), so
    the next reading is this measurement's peak, not the largest of the whole run."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process since the last reset, in MB (None off Linux)."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def best_throughput(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each model and backend, the batch with the highest throughput (images per second)."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        key = (r["model"], r["backend"])
        if key not in best or r["throughput_ips"] > best[key]["throughput_ips"]:
            best[key] = r
    return [{"model": m, "backend": b, "batch": r["batch"], "throughput_ips": r["throughput_ips"]}
            for (m, b), r in best.items()]


def first_image(dataset: LandmarkDataset, split: str) -> np.ndarray:
    return load_grayscale(dataset.split(split)[0].path)


def _cost_cells(record: dict[str, Any]) -> list[str]:
    """Parameters, GMACs per image and artifact MB of a record ("-" where a stage did not know)."""
    cost = record.get("cost") or {}
    return [f"{cost['params']:,}" if cost.get("params") else "-",
            f"{cost['macs'] / 1e9:.2f}" if cost.get("macs") else "-",
            f"{cost['bytes'] / 1e6:.2f}" if cost.get("bytes") else "-"]


def _refusal(detector: LandmarkDetector, image: np.ndarray) -> str | None:
    """Why the detector refuses the end-to-end image (its quality gate), or None if it answers."""
    quality = detector.detect(image).quality
    return None if quality.usable else quality.reason


def _stages(detector: LandmarkDetector) -> list[LandmarkDetector]:
    """A detector and its refiner chain, first stage first."""
    stages = [detector]
    while stages[-1].refiner is not None:
        stages.append(stages[-1].refiner)
    return stages


def results_markdown(records: list[dict[str, Any]], facts: dict[str, Any], command: str) -> str:
    """The results table a human reads, with where and how it was measured."""
    lines = [
        "# edgeld benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {facts['cpu']}, {facts['cpu_count']} logical CPUs, {facts['os']}; "
        f"onnxruntime {facts['libraries'].get('onnxruntime')}, torch {facts['libraries'].get('torch')}",
        "",
        "| model | backend | precision | batch | p50 ms | p90 ms | p99 ms | end-to-end p50 ms "
        "| p50 spread over repeats (model / end-to-end) | images/s | MRE mm | SDR@2mm % "
        "| params | GMACs | MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    refusals = []
    for r in records:
        lat, e2e = r["latency_ms"], r.get("end_to_end_ms")
        if r.get("end_to_end_refused"):
            refusals.append(f"- {r['model']} [{r['backend']}]: {r['end_to_end_refused']}")
        spread = " / ".join(f"{x['p50_spread_pct']:.1f}%" if x and "p50_spread_pct" in x else "-"
                            for x in (lat, e2e))
        cells = [r["model"], r["backend"], r["precision"], str(r["batch"]),
                 f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}",
                 f"{e2e['p50']:.2f}" if e2e else "refused" if r.get("end_to_end_refused") else "-",
                 spread, f"{r['throughput_ips']:.1f}",
                 f"{r['mre_mm']:.3f}" if "mre_mm" in r else "-",
                 f"{r['sdr_percent']['2.0']:.1f}" if "sdr_percent" in r else "-", *_cost_cells(r)]
        lines.append("| " + " | ".join(cells) + " |")
    powered = [r for r in records if r.get("power_end_to_end") or r.get("power_model_only")]
    if powered:
        lines += ["", "Power (tegrastats, input rail; energy charged above the idle baseline when known):", "",
                  "| model | backend | batch | phase | mean input mW | above idle mW | mJ per image | max temp C |",
                  "|---|---|---:|---|---:|---:|---:|---:|"]
        for r in powered:
            for phase in ("model_only", "end_to_end"):
                pw = r.get(f"power_{phase}")
                if pw:
                    above = pw["mean_above_idle_mw"]
                    lines.append(f"| {r['model']} | {r['backend']} | {r['batch']} | {phase.replace('_', '-')} "
                                 f"| {pw['mean_input_mw']:.0f} | {'-' if above is None else f'{above:.0f}'} "
                                 f"| {pw['energy_per_image_mj']:.1f} "
                                 f"| {max(pw['max_temperatures_c'].values(), default=float('nan')):.1f} |")
    lines += ["", "Model-only time runs the network on a preprocessed batch; end-to-end time goes "
              "from a decoded grayscale image to landmarks in mm (letterbox, network, decoding). "
              "params, GMACs (multiply-accumulates per image) and MB (artifact bytes) add up "
              "every stage of a cascade."]
    if refusals:
        lines += ["", "End-to-end not timed: the detector refused the image, so its time would not be "
                  "the path's (a cascade skips its refiner). Give --data with this model's films.", "",
                  *refusals]
    return "\n".join(lines + _peak_lines(records, facts)) + "\n"


def _peak_lines(records: list[dict[str, Any]], facts: dict[str, Any]) -> list[str]:
    """How close each first stage's model-only time comes to this machine's attainable MAC rate."""
    rates = facts.get("attainable_macs_per_s")
    rated = [r for r in records if r.get("macs_rate")]
    if not rates or not rated:
        return []
    lines = ["", f"Distance to the limit: this machine's attainable rate on ONNX Runtime ({rates['probe']}) "
             f"is {rates['fp32'] / 1e9:.0f} G MACs/s FP32 and {rates['int8'] / 1e9:.0f} G MACs/s INT8 "
             "(u8 x s8). Each first stage's MACs over its model-only p50, against its precision's:", "",
             "| model | precision | batch | achieved G MACs/s | share of attainable |",
             "|---|---|---:|---:|---:|"]
    for r in rated:
        rate = r["macs_rate"]
        share = f"{100 * rate['fraction']:.0f}%" if rate.get("fraction") else "-"
        lines.append(f"| {r['model']} | {r['precision']} | {r['batch']} "
                     f"| {rate['achieved_macs_per_s'] / 1e9:.0f} | {share} |")
    return lines
