"""The attainable MAC-rate probe and a model's share of it (issue 12: distance to the limit)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeld.bench.peak import CHANNELS, PROBE_MACS, SIDE, attainable_macs_per_s, conv_probe, fraction_of_peak


@pytest.mark.parametrize("precision, dtype", [("fp32", np.float32), ("int8", np.uint8)])
def test_probe_graphs_are_valid_and_run_on_onnx_runtime(precision, dtype):
    data = conv_probe(precision)
    onnx.checker.check_model(onnx.load_from_string(data))
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = np.full((1, CHANNELS, SIDE, SIDE), 130, dtype=dtype)
    y = session.run(None, {"x": x})[0]
    assert y.shape == x.shape and y.dtype == dtype
    op = onnx.load_from_string(data).graph.node[0].op_type
    assert op == ("Conv" if precision == "fp32" else "QLinearConv")
    assert PROBE_MACS == 128 * 128 * 9 * 64 * 64


def test_attainable_rates_are_measured_and_shares_follow_them():
    rates = attainable_macs_per_s(threads=1, seconds=0.2)
    assert rates["fp32"] > 1e8 and rates["int8"] > 1e8  # any machine does 0.1 G MACs/s
    share = fraction_of_peak(10**9, 10.0, "int8", rates)  # 1 G MACs in 10 ms: 100 G MACs/s
    assert share["achieved_macs_per_s"] == pytest.approx(1e11)
    assert share["fraction"] == pytest.approx(1e11 / rates["int8"])
    assert fraction_of_peak(10**9, 10.0, "fp16", rates)["fraction"] == pytest.approx(1e11 / rates["fp32"])
    assert fraction_of_peak(None, 10.0, "fp32", rates) is None


def test_benchmark_records_carry_each_stages_runtime_settings(trained_tiny):
    from edgeld.bench.harness import benchmark_detector
    from edgeld.runtime import LandmarkDetector

    detector = LandmarkDetector(trained_tiny["onnx"], threads=1)
    record = benchmark_detector(detector, "tiny", image=np.zeros((160, 128), np.uint8),
                                warmup_s=0.0, min_seconds=0.0, min_runs=3)
    (settings,) = record["runtime_settings"]
    assert settings["intra_op_threads"] == 1 and settings["allow_spinning"] is False
    assert settings["graph_optimization"] == "all" and settings["providers"] == ["CPUExecutionProvider"]
