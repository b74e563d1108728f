"""Which student shapes does INT8 speed up on this CPU? Model-only latency of untrained networks of
the LandmarkNet family, FP32 against INT8 `--target cpu`, interleaved in one process.

Latency does not depend on weight values, so each candidate is timed untrained: a checkpoint from
random weights, exported as the shipped student is (`export_onnx`), then quantized with the
committed calibration set (every layer in INT8, as the shipped student's export kept none in
float32). Accuracy is a separate question: a shape worth it here must then be trained.

    taskset -c 0,1 python benchmarks/cpu-2core/int8-friendly/shapes.py \
        --rounds 5 --runs 40 --json benchmarks/cpu-2core/int8-friendly/results.json
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from edgeld.bench.peak import attainable_macs_per_s
from edgeld.config import HeatmapSpec, InputSpec, ModelSpec
from edgeld.core.contract import ModelIO
from edgeld.core.files import atomic_write_json
from edgeld.data.datasets import ISBI2015_LANDMARKS
from edgeld.export.calibration import load_calibration
from edgeld.export.onnx import export_onnx
from edgeld.export.precision import prepare_for_quantization, quantize_int8
from edgeld.models.checkpoint import save_checkpoint
from edgeld.models.cost import count_macs, count_params
from edgeld.models.landmarknet import LandmarkNet

CALIBRATION = "calibration/isbi2015-train-diverse64"
# name -> (stem and stage widths, blocks per stage, decoder width); the first is the shipped one
# Every candidate fits the deployed budget beside the shipped refiner (172,659 params): at most
# 827,341 for the student.
CANDIDATES = {
    "shipped: 16-32-48-80-128 (1,2,2,1) d48": ((16, 32, 48, 80, 128), (1, 2, 2, 1), 48),
    "narrow decoder: 16-32-48-80-128 (1,2,2,1) d32": ((16, 32, 48, 80, 128), (1, 2, 2, 1), 32),
    "64-aligned: 16-32-64-64-128 (1,2,2,1) d32": ((16, 32, 64, 64, 128), (1, 2, 2, 1), 32),
    "no stride-4 block: 16-32-64-64-128 (0,2,2,1) d48": ((16, 32, 64, 64, 128), (0, 2, 2, 1), 48),
    "no stride-4 block: 16-32-64-64-128 (0,2,2,1) d32": ((16, 32, 64, 64, 128), (0, 2, 2, 1), 32),
    "deeper at stride 8: 16-32-64-64-128 (0,3,2,1) d32": ((16, 32, 64, 64, 128), (0, 3, 2, 1), 32),
    "deeper at stride 16: 16-32-64-64-128 (0,2,3,1) d32": ((16, 32, 64, 64, 128), (0, 2, 3, 1), 32),
}


def session(path: Path, threads: int) -> ort.InferenceSession:
    """The runtime's settings (edgeld/runtime/runners.py): all graph optimisations, no spinning."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build(index: int, name: str, shape, work: Path, calibration: np.ndarray) -> dict:
    widths, depths, decoder = shape
    torch.manual_seed(0)
    spec = replace(ModelSpec(), widths=widths, depths=depths, decoder_width=decoder,
                   num_landmarks=len(ISBI2015_LANDMARKS))
    net = LandmarkNet(spec).eval()
    io = ModelIO(InputSpec(), HeatmapSpec(), ISBI2015_LANDMARKS)
    stem = work / f"candidate{index}"
    ckpt = stem.with_suffix(".safetensors")
    save_checkpoint(ckpt, net, io, {"training": {"role": "student", "untrained": True}})
    fp32 = stem.with_suffix(".onnx")
    export_onnx(ckpt, fp32)
    prepared = stem.with_name(stem.name + "-prepared.onnx")
    prepare_for_quantization(fp32, prepared)
    int8 = stem.with_name(stem.name + "-int8.onnx")
    quantize_int8(prepared, int8, io.input_name, calibration, "cpu")
    return {"name": name, "widths": widths, "depths": depths, "decoder_width": decoder,
            "params": count_params(net), "macs": count_macs(net, io.input_height, io.input_width),
            "fp32": fp32, "int8": int8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=40, help="timed runs per model per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    calibration = load_calibration(CALIBRATION, progress=False).tensors
    x = calibration[:1].astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        models = [build(i, n, s, Path(tmp), calibration)
                  for i, (n, s) in enumerate(CANDIDATES.items())]
        sessions = [(m, p, session(m[p], args.threads)) for m in models for p in ("fp32", "int8")]
        for _, _, s in sessions:  # warm-up
            for _ in range(10):
                s.run(None, {s.get_inputs()[0].name: x})
        times: dict[tuple[str, str], list[float]] = {(m["name"], p): [] for m, p, _ in sessions}
        for _ in range(args.rounds):  # interleaved: drift hits every model alike
            for m, p, s in sessions:
                feed = {s.get_inputs()[0].name: x}
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    s.run(None, feed)
                    times[(m["name"], p)].append((time.perf_counter() - t0) * 1e3)
    peak = attainable_macs_per_s(threads=args.threads)
    rows = []
    print(f"model-only p50 over {args.rounds} rounds x {args.runs} runs, {args.threads} threads; "
          f"attainable: {peak}")
    print("| shape | params | GMACs | FP32 p50 ms | INT8 p50 ms | INT8 / FP32 | spread FP32 / INT8 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m in models:
        row = {k: v for k, v in m.items() if k not in ("fp32", "int8")}
        for p in ("fp32", "int8"):
            t = np.array(times[(m["name"], p)]).reshape(args.rounds, args.runs)
            per_round = np.median(t, axis=1)
            row[f"{p}_p50_ms"] = float(np.median(t))
            row[f"{p}_round_spread"] = float((per_round.max() - per_round.min()) / np.median(t))
        row["int8_over_fp32"] = row["int8_p50_ms"] / row["fp32_p50_ms"]
        rows.append(row)
        print(f"| {m['name']} | {m['params']:,} | {m['macs'] / 1e9:.2f} | {row['fp32_p50_ms']:.2f} | "
              f"{row['int8_p50_ms']:.2f} | {row['int8_over_fp32']:.2f} | "
              f"{row['fp32_round_spread']:.0%} / {row['int8_round_spread']:.0%} |")
    if args.json:
        atomic_write_json(args.json, {"rounds": args.rounds, "runs": args.runs,
                                      "threads": args.threads, "attainable": peak,
                                      "machine": platform.processor() or platform.machine(),
                                      "onnxruntime": ort.__version__, "rows": rows})


if __name__ == "__main__":
    main()
