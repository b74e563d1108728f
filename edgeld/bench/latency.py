"""Wall-clock latency with time-based warm-up and enough runs for stable percentiles."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def measure_latency(fn: Callable[[], object], warmup_s: float = 1.0, min_runs: int = 50,
                    min_seconds: float = 3.0, max_runs: int = 100_000) -> dict[str, float]:
    """Call `fn` until both min_runs and min_seconds are reached, after warm-up; times in ms.

    Warm-up is time-based because first calls pay for allocation, kernel selection and caches,
    and how many calls that takes depends on the backend.
    """
    end = time.perf_counter() + warmup_s
    fn()
    while time.perf_counter() < end:
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000.0
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()), "std": float(ms.std()),
            "runs": int(ms.size)}
