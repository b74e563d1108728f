"""Wall-clock latency with time-based warm-up and enough runs for stable percentiles."""
from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any, Callable, ContextManager

import numpy as np


def measure_latency(fn: Callable[[], object], warmup_s: float = 1.0, min_runs: int = 50,
                    min_seconds: float = 3.0, max_runs: int = 100_000,
                    during: Callable[[], ContextManager[Any]] | None = None) -> dict[str, Any]:
    """Call `fn` until both min_runs and min_seconds are reached, after warm-up; times in ms.

    Warm-up is time-based because first calls pay for allocation, kernel selection and caches,
    and how many calls that takes depends on the backend. `during` wraps the timed phase only
    (e.g. a power sampler); whatever it yields is returned under "during".
    """
    end = time.perf_counter() + warmup_s
    fn()
    while time.perf_counter() < end:
        fn()
    times = []
    with (during() if during is not None else nullcontext()) as monitor:
        start = time.perf_counter()
        while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_seconds):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - start
    result: dict[str, Any] = {**summarize_ms(np.array(times) * 1000.0), "seconds": round(seconds, 3)}
    if monitor is not None:
        result["during"] = monitor
    return result


def summarize_ms(ms: np.ndarray) -> dict[str, Any]:
    """Percentiles, mean, std and count of a series of times in ms."""
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()), "std": float(ms.std()),
            "runs": int(ms.size)}
