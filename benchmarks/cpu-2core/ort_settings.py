"""ONNX Runtime session settings for batch 1 on a few cores: model-only p50 of one artifact under
each combination of intra-op threads, spinning, memory arena and graph optimisation level,
interleaved so drift hits every combination alike.

Usage: python benchmarks/cpu-2core/ort_settings.py MODEL.onnx [--rounds 5] [--runs 40]
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import onnxruntime as ort


def session(path: str, threads: int, spinning: bool, arena: bool, level: str):
    options = ort.SessionOptions()
    options.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    options.intra_op_num_threads = threads
    options.enable_cpu_mem_arena = arena
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    combos = list(itertools.product((1, 2), (False, True), (True, False), ("all", "basic")))
    sessions = [session(args.model, *c) for c in combos]
    shape = [d if isinstance(d, int) else 1 for d in sessions[0].get_inputs()[0].shape]
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    name = sessions[0].get_inputs()[0].name
    times: list[list[float]] = [[] for _ in combos]
    for s in sessions:  # warm-up
        for _ in range(5):
            s.run(None, {name: x})
    for _ in range(args.rounds):  # interleaved rounds
        for k, s in enumerate(sessions):
            for _ in range(args.runs // args.rounds or 1):
                t0 = time.perf_counter()
                s.run(None, {name: x})
                times[k].append((time.perf_counter() - t0) * 1e3)
    print(f"{args.model}, batch 1, {len(times[0])} runs per setting, model-only p50 ms:")
    print("| threads | spinning | memory arena | graph optimisation | p50 ms |")
    print("|---:|---|---|---|---:|")
    for (threads, spin, arena, level), t in sorted(zip(combos, times), key=lambda c: np.median(c[1])):
        print(f"| {threads} | {'on' if spin else 'off'} | {'on' if arena else 'off'} | {level} "
              f"| {np.median(t):.2f} |")


if __name__ == "__main__":
    main()
