"""`edgeld benchmark`'s orchestration: open every model x backend, measure accuracy once, then time
everything `repeat` times with the models interleaved, and write results.json and results.md."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from edgeld.bench.cost import is_untrained, model_cost
from edgeld.bench.device import device_facts, pin_cpus
from edgeld.bench.harness import (benchmark_detector, best_throughput, first_image, merge_repeat,
                                  results_markdown, sample_film)
from edgeld.bench.peak import attainable_macs_per_s, fraction_of_peak
from edgeld.data import open_dataset
from edgeld.core.errors import UserError
from edgeld.evaluate import evaluate
from edgeld.load import open_detector
from edgeld.model_ref import ModelArg, ModelRef, resolve_model
from edgeld.core.files import atomic_write_bytes, atomic_write_json

Echo = Callable[[str], None]


def check_data_split(data_dir: str | None, split: str | None) -> None:
    """Accuracy needs both a dataset and a split: one without the other is a usage error."""
    if (data_dir is None) != (split is None):
        raise UserError("--data and --split go together")


def backends_for(model: ModelRef, backends: Sequence[str]) -> tuple[str | None, ...]:
    """The requested backends that run this kind of model; (None,) means its default runner
    (no --backend given, or an engine: TensorRT is its only runner). A UserError when backends
    were asked for and none of them runs this model: never a silent switch to another one."""
    if model.kind == "engine" or not backends:
        return (None,)
    prefix = "onnxruntime" if model.kind == "onnx" else "torch"
    usable = tuple(b for b in backends if b.startswith(prefix))
    if not usable:
        what = ("an .onnx file: it runs on onnxruntime-* backends" if model.kind == "onnx" else
                f"a checkpoint: it runs on torch-* backends, or export it first (edgeld export "
                f"{model} --to onnx --out PATH.onnx)")
        raise UserError(f"--backend {' '.join(backends)} cannot run {model}, {what}")
    return usable


def power_monitor(mode: str):
    """A tegrastats PowerMonitor for --power on (or auto on a Jetson), else None."""
    import shutil

    from edgeld.bench.device import jetson_release
    from edgeld.bench.tegrastats import PowerMonitor

    have = shutil.which("tegrastats") is not None
    if mode == "on" and not have:
        raise UserError("--power on needs tegrastats on PATH (an NVIDIA Jetson); use --power off")
    if mode == "on" or (mode == "auto" and have and jetson_release() is not None):
        return PowerMonitor()
    return None


def run_benchmark(models: Sequence[ModelArg], out_dir: str | Path, *, refiners: Sequence[ModelArg] = (),
                  data_dir: str | None = None, split: str | None = None, batches: Sequence[int] = (1,),
                  seconds: float = 3.0, threads: int = 0, backends: Sequence[str] = (),
                  min_runs: int = 50, repeat: int = 1, power: str = "auto", cpus: str | None = None,
                  command: str = "edgeld benchmark", echo: Echo = print) -> list[dict[str, Any]]:
    """Benchmark each model (followed by `refiners`) on each backend that runs it and write
    out_dir/results.json and results.md; returns the records (one per model x backend x batch).
    `cpus` pins the process first (see `pin_cpus`); threads then default to one per pinned CPU."""
    check_data_split(data_dir, split)
    if cpus:
        pinned = pin_cpus(cpus)  # before any runtime starts its threads
        threads = threads or len(pinned)
        echo(f"pinned to CPUs {', '.join(map(str, pinned))} with {threads} threads")
    dataset = open_dataset(data_dir) if data_dir else None
    # read once for every model, batch and repeat: the split's first film, else the bundled one
    image = first_image(dataset, split) if dataset else sample_film()
    # resolved here, once, after the data (whose errors a user sees first, as before)
    refiners = [resolve_model(r) for r in refiners]
    runs = [(m, b) for m in map(resolve_model, models) for b in backends_for(m, backends)]
    names = [" + ".join(str(r) for r in (m, *refiners)) for m, _ in runs]
    detectors = [open_detector(m, threads, refiners, b) for m, b in runs]  # fail before timing
    facts = device_facts(threads or None)
    costs = [model_cost(m, refiners) for m, _ in runs]
    accuracies = [_accuracy(name, detector, m, dataset, split, echo)
                  for name, detector, (m, _) in zip(names, detectors, runs)]
    monitor = power_monitor(power)
    if monitor is not None:
        idle = monitor.measure_idle()
        echo(f"idle input power: {idle:.0f} mW" if idle is not None
             else "idle input power: tegrastats gave no input rail; energy is not charged above idle")
    records: list[dict[str, Any]] = []
    total, done = repeat * len(detectors) * len(batches), 0
    for r in range(repeat):  # interleaved, so slow drift of the machine hits every model alike
        for i, (name, detector) in enumerate(zip(names, detectors)):
            for j, batch in enumerate(batches):
                done += 1
                echo(f"[{done}/{total}] timing {name} batch {batch} for at least {seconds:g} s "
                     f"and {min_runs} runs ...")
                record = _timed(detector, name, batch, image, seconds, min_runs, monitor,
                                f" (repeat {r + 1}/{repeat})" if repeat > 1 else "", echo)
                if r == 0:
                    records.append({**record, **accuracies[i], "cost": costs[i], "device": facts})
                else:
                    merge_repeat(records[i * len(batches) + j], record)
    _add_macs_rates(records, [model_cost(m)["macs"] for m, _ in runs], len(batches), facts,
                    threads, echo)
    _write_results(Path(out_dir), command, facts, records)
    return records


def _add_macs_rates(records: list[dict[str, Any]], first_stage_macs: list[int | None],
                    per_model: int, facts: dict[str, Any], threads: int, echo: Echo) -> None:
    """This machine's attainable FP32/INT8 MAC rates (into the device facts) and, per record, the
    first stage's achieved rate over its model-only p50 as a fraction of its precision's."""
    echo("measuring this machine's attainable MAC rate (FP32 and INT8 conv probe) ...")
    rates = attainable_macs_per_s(threads)
    facts["attainable_macs_per_s"] = rates
    for k, record in enumerate(records):
        macs = first_stage_macs[k // per_model]
        record["macs_rate"] = fraction_of_peak(macs * record["batch"] if macs else None,
                                               record["latency_ms"]["p50"], record["precision"],
                                               rates)


def _accuracy(name: str, detector, model: ModelRef, dataset, split: str | None,
              echo: Echo) -> dict[str, Any]:
    """The evaluate fields of one detector on the split ({} without data)."""
    if dataset is None:
        return {}
    if is_untrained(model):  # timing-only peers: their accuracy would mean nothing
        echo(f"{name}: untrained weights, timed only (no accuracy)")
        return {"accuracy": "not measured: untrained weights, timed only"}
    t0 = time.perf_counter()
    accuracy = evaluate(detector, dataset, split, progress=True)
    accuracy.pop("per_image")  # evaluate --json keeps them; a benchmark record stays one row
    accuracy["accuracy_wall_s"] = round(time.perf_counter() - t0, 1)
    echo(f"{name}: {split} MRE {accuracy['mre_mm']:.3f} mm in {accuracy['accuracy_wall_s']} s")
    return accuracy


def _timed(detector, name: str, batch: int, image, seconds: float, min_runs: int, monitor,
           which: str, echo: Echo) -> dict[str, Any]:
    """One latency record, echoed as a line of percentiles."""
    record = benchmark_detector(detector, name, batch, image, min_seconds=seconds,
                                min_runs=min_runs, power=monitor)
    lat = record["latency_ms"]
    echo(f"{name} [{record['backend']}] batch {batch}{which}: p50 {lat['p50']:.2f} ms, "
         f"p90 {lat['p90']:.2f} ms, p99 {lat['p99']:.2f} ms")
    if record.get("end_to_end_refused"):
        echo(f"{name}: end-to-end not timed, the image was refused ({record['end_to_end_refused']}); "
             "give --data with this model's films")
    return record


def _write_results(out: Path, command: str, facts: dict[str, Any],
                   records: list[dict[str, Any]]) -> None:
    atomic_write_json(out / "results.json", {"command": command, "device": facts, "records": records,
                                             "best_throughput": best_throughput(records)})
    atomic_write_bytes(out / "results.md", results_markdown(records, facts, command).encode())

