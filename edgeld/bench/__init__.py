"""Benchmark harness: latency percentiles, accuracy of the same artifact, device facts, reports."""
