"""This machine's attainable multiply-accumulate rate on ONNX Runtime, FP32 and INT8: the ceiling
a model's own rate (its MACs over its model-only time) is read against.

The probe is one large 3x3 convolution (128 -> 128 channels on 64x64, 604 M MACs), the kind of
layer ONNX Runtime's kernels are best at: FP32 Conv, and QLinearConv with uint8 activations and
int8 weights (the layout `export --to int8 --target cpu` writes). A network of small, narrow layers
reaches a fraction of it; how large a fraction says how much a faster kernel could still give.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

CHANNELS, SIDE, KERNEL = 128, 64, 3
PROBE_MACS = CHANNELS * CHANNELS * KERNEL * KERNEL * SIDE * SIDE


def conv_probe(precision: str) -> bytes:
    """The probe graph as ONNX bytes: 'fp32' (Conv) or 'int8' (QLinearConv, u8 x s8)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    shape = [1, CHANNELS, SIDE, SIDE]
    weight = rng.normal(0, 0.05, (CHANNELS, CHANNELS, KERNEL, KERNEL)).astype(np.float32)
    pads = {"pads": [1, 1, 1, 1]}
    if precision == "fp32":
        inits = [numpy_helper.from_array(weight, "w")]
        node = helper.make_node("Conv", ["x", "w"], ["y"], **pads)
        elem = TensorProto.FLOAT
    elif precision == "int8":
        q = np.clip(np.round(weight / 0.004), -127, 127).astype(np.int8)
        scalars = {"x_scale": np.float32(0.02), "x_zp": np.uint8(128), "w_scale": np.float32(0.004),
                   "w_zp": np.int8(0), "y_scale": np.float32(0.05), "y_zp": np.uint8(128)}
        inits = [numpy_helper.from_array(q, "w")] + [
            numpy_helper.from_array(np.array(v), k) for k, v in scalars.items()]
        node = helper.make_node("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp",
                                                "y_scale", "y_zp"], ["y"], **pads)
        elem = TensorProto.UINT8
    else:
        raise ValueError(f"no MAC-rate probe for precision {precision!r}")
    graph = helper.make_graph([node], "mac_probe", [helper.make_tensor_value_info("x", elem, shape)],
                              [helper.make_tensor_value_info("y", elem, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def attainable_macs_per_s(threads: int = 0, seconds: float = 1.0) -> dict[str, Any]:
    """Median MAC rate of the probe per precision, with the session set up as the runtime's
    (all graph optimisations, `threads` intra-op threads, no spinning between runs)."""
    import onnxruntime as ort

    rates: dict[str, Any] = {"probe": f"{CHANNELS}->{CHANNELS} 3x3 conv on {SIDE}x{SIDE}, "
                                      f"{PROBE_MACS / 1e6:.0f} M MACs", "threads": threads or None}
    for precision in ("fp32", "int8"):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(conv_probe(precision), options,
                                       providers=["CPUExecutionProvider"])
        dtype = np.float32 if precision == "fp32" else np.uint8
        x = np.random.default_rng(1).integers(0, 255, (1, CHANNELS, SIDE, SIDE)).astype(dtype)
        times = _time(lambda: session.run(None, {"x": x}), seconds)
        rates[precision] = PROBE_MACS / float(np.median(times))
    return rates


def _time(run, seconds: float, min_runs: int = 10) -> list[float]:
    run()  # warm-up: kernels chosen, buffers allocated
    times, end = [], time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < end:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return times


def fraction_of_peak(macs: int | None, model_ms: float, precision: str,
                     rates: dict[str, Any]) -> dict[str, Any] | None:
    """A model's achieved MAC rate and its share of the attainable one for its precision (FP16
    runs on FP32 kernels on a CPU); None without a MAC count."""
    if not macs or model_ms <= 0:
        return None
    ceiling = rates.get("int8" if precision == "int8" else "fp32")
    achieved = macs / (model_ms / 1e3)
    return {"achieved_macs_per_s": achieved,
            "fraction": achieved / ceiling if ceiling else None}
