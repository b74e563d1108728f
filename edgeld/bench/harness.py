"""`edgeld benchmark`: latency (model-only and end-to-end) and, with data, accuracy per artifact."""
from __future__ import annotations

from typing import Any

import numpy as np

from edgeld.bench.latency import measure_latency
from edgeld.data import LandmarkDataset, load_grayscale
from edgeld.runtime import LandmarkDetector


def synthetic_xray(height: int = 2400, width: int = 1935, seed: int = 0) -> np.ndarray:
    """A decoded 8-bit image of ISBI size for end-to-end timing when no data is given."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width), dtype=np.uint8)


def benchmark_detector(detector: LandmarkDetector, model: str, batch: int = 1,
                       image: np.ndarray | None = None, warmup_s: float = 1.0,
                       min_seconds: float = 3.0, min_runs: int = 50) -> dict[str, Any]:
    """One record: model-only latency on a preprocessed batch, end-to-end latency on an image."""
    image = synthetic_xray() if image is None else image
    tensor, _ = detector.preprocess(image)
    inputs = np.repeat(tensor[None], batch, axis=0)
    reset_peak_rss()
    model_only = measure_latency(lambda: detector.runner.infer(inputs), warmup_s, min_runs, min_seconds)
    record = {
        "model": model,
        "backend": detector.runner.name,
        "precision": getattr(detector.runner, "precision", None)
        or detector.manifest.get("artifact", {}).get("precision", "fp32"),
        "batch": batch,
        "input_size": [detector.io.input_height, detector.io.input_width],
        # with a refinement stage, model-only time is the first stage; end-to-end covers both
        "cascade": detector.refiner is not None,
        "latency_ms": model_only,
        "throughput_ips": batch * 1000.0 / model_only["mean"],
    }
    if batch == 1:
        record["end_to_end_ms"] = measure_latency(lambda: detector.detect(image), warmup_s,
                                                  min_runs, min_seconds)
        record["end_to_end_input"] = f"decoded {image.dtype} image {image.shape[0]}x{image.shape[1]}"
    if getattr(getattr(detector.runner, "device", None), "type", None) == "cuda":
        record.update(cuda_breakdown(detector.runner, inputs, warmup_s, min_runs, min_seconds))
    record["peak_host_memory_mb"] = peak_rss_mb()
    return record


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
    summary = {k: _percentiles(np.array(v)) for k, v in samples.items()}
    return {"device_ms": summary["compute"], "copy_ms": {"h2d": summary["h2d"], "d2h": summary["d2h"]},
            "peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20}


def _percentiles(ms: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()), "std": float(ms.std()),
            "runs": int(ms.size)}


def merge_repeat(record: dict[str, Any], again: dict[str, Any]) -> None:
    """Fold a repeated measurement into the first one's record: every repeat's p50 is kept, and
    `p50_spread_pct` says how far they lie apart ((max - min) / min), the figure to read
    before trusting a difference between two models."""
    for key in ("latency_ms", "end_to_end_ms", "device_ms"):
        if key not in record:
            continue
        stats = record[key]
        stats.setdefault("p50_repeats", [stats["p50"]]).append(again[key]["p50"])
        p50s = stats["p50_repeats"]
        stats["p50_spread_pct"] = 100.0 * (max(p50s) - min(p50s)) / min(p50s)
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
        "| p50 spread over repeats (model / end-to-end) | images/s | MRE mm | SDR@2mm % |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        lat, e2e = r["latency_ms"], r.get("end_to_end_ms")
        spread = " / ".join(f"{x['p50_spread_pct']:.1f}%" if x and "p50_spread_pct" in x else "-"
                            for x in (lat, e2e))
        cells = [r["model"], r["backend"], r["precision"], str(r["batch"]),
                 f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}",
                 f"{e2e['p50']:.2f}" if e2e else "-", spread, f"{r['throughput_ips']:.1f}",
                 f"{r['mre_mm']:.3f}" if "mre_mm" in r else "-",
                 f"{r['sdr_percent']['2.0']:.1f}" if "sdr_percent" in r else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Model-only time runs the network on a preprocessed batch; end-to-end time goes "
              "from a decoded grayscale image to landmarks in mm (letterbox, network, decoding)."]
    return "\n".join(lines) + "\n"
