"""Lower-precision ONNX (INT8 Q/DQ, FP16) from an FP32 ONNX, with per-layer sensitivity.

Precision lives in the graph (DESIGN: TensorRT 11 is strongly typed): INT8 as QuantizeLinear /
DequantizeLinear pairs from calibration data, FP16 as casts around float16 layers. Layers whose
lowering costs accuracy stay in float32, chosen by measurement.
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgeld.core.errors import UserError
from edgeld.options import CALIBRATION_METHODS, INT8_TARGETS

WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over an in-memory tensor stack."""

    def __init__(self, input_name: str, tensors: np.ndarray):
        self.input_name, self.tensors, self.index = input_name, tensors, 0

    def get_next(self):
        if self.index >= len(self.tensors):
            return None
        self.index += 1
        return {self.input_name: self.tensors[self.index - 1:self.index]}

    def rewind(self) -> None:
        self.index = 0


def weight_nodes(onnx_path: str | Path) -> list[str]:
    """Names of the Conv / Gemm / MatMul nodes: the layers quantization and FP16 act on."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    return [n.name for n in graph.node if n.op_type in WEIGHT_OPS]


def _output_channel_axis(node) -> int:
    """The axis of a weight-layer's weight that indexes its output channels."""
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return {"Conv": 0, "ConvTranspose": 1, "MatMul": 1}[node.op_type]


def int8_weight_layout(onnx_path: str | Path) -> dict[str, int]:
    """Counted from the graph itself: weight layers whose weight is an INT8 initializer behind a
    DequantizeLinear (`layers`), of which with one scale per output channel on that axis
    (`per_channel`) and with zero points 0 (`symmetric`)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name: i for i in graph.initializer}
    dequant = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    counts = {"layers": 0, "per_channel": 0, "symmetric": 0}
    for node in graph.node:
        dq = dequant.get(node.input[1]) if node.op_type in WEIGHT_OPS and len(node.input) > 1 else None
        if dq is None or dq.input[0] not in inits:
            continue
        weight = numpy_helper.to_array(inits[dq.input[0]])
        if weight.dtype != np.int8:
            continue
        scale = numpy_helper.to_array(inits[dq.input[1]])
        zero = numpy_helper.to_array(inits[dq.input[2]]) if len(dq.input) > 2 else np.zeros(1)
        axis = _output_channel_axis(node)
        dq_axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)  # ONNX's default
        counts["layers"] += 1
        counts["per_channel"] += int(scale.ndim == 1 and scale.size == weight.shape[axis] > 1
                                     and dq_axis % weight.ndim == axis)
        counts["symmetric"] += int(not zero.any())
    return counts


def describe_int8_weights(layout: dict[str, int]) -> str:
    """The manifest's words for `int8_weight_layout`'s counts."""
    n = layout["layers"]
    if n == 0:
        return "none in int8"
    per = layout["per_channel"]
    granularity = ("per-channel" if per == n else "per-tensor" if per == 0
                   else f"per-channel in {per} of {n} layers")
    symmetry = "symmetric" if layout["symmetric"] == n else "zero points not all 0"
    return f"int8, {granularity}, {symmetry}"


def prepare_for_quantization(fp32_path: str | Path, out_path: str | Path) -> None:
    """ONNX Runtime's recommended pre-processing: graph optimization and shape inference."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet_root_logger():
        quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime.quantization logs advice on the root logger at WARNING; keep the CLI readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def layer_names(onnx_path: str | Path) -> dict[str, str]:
    """ONNX node name -> the torch layer it came from (its weight's name without `.weight`)."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name for i in graph.initializer}
    names = {}
    for node in graph.node:
        if node.op_type not in WEIGHT_OPS:
            continue
        weights = [i for i in node.input[1:2] if i in inits]
        if weights:
            names[node.name] = weights[0].removesuffix(".weight")
    return names


def quantize_int8(fp32_path: str | Path, out_path: str | Path, input_name: str,
                  calibration: np.ndarray, target: str = "tensorrt", method: str = "minmax",
                  exclude: Sequence[str] = (), only: Sequence[str] | None = None,
                  cache_dir: str | Path | None = None) -> None:
    """Write a Q/DQ INT8 ONNX: per-channel symmetric INT8 weights; activations per `target`.

    tensorrt: signed INT8 activations, symmetric (zero point 0), biases left in float: what
    TensorRT's explicit quantization accepts; ONNX Runtime runs it too.
    cpu: unsigned 8-bit activations with zero points, ONNX Runtime's fastest x86 form (VNNI u8s8).
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    if target not in INT8_TARGETS:
        raise UserError(f"unknown INT8 target '{target}' (choose from {', '.join(INT8_TARGETS)})")
    if method not in CALIBRATION_METHODS:
        raise UserError(f"unknown calibration method '{method}' "
                        f"(choose from {', '.join(CALIBRATION_METHODS)})")
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    extra = {"WeightSymmetric": True, "ActivationSymmetric": target == "tensorrt",
             "QuantizeBias": target == "cpu"}
    if method == "percentile":
        extra["CalibPercentile"] = 99.99
    kwargs = {}
    if cache_dir is not None:  # reuse activation ranges across the sensitivity sweep
        kwargs["calibration_cache_path"] = str(Path(cache_dir) / f"ranges-{method}.json")
    with _quiet_root_logger():
        quantize_static(
            str(fp32_path), str(out_path), _Reader(input_name, calibration),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8 if target == "tensorrt" else QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=calib,
            nodes_to_exclude=list(exclude) or None, nodes_to_quantize=list(only) if only else None,
            op_types_to_quantize=["Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Resize", "Relu",
                                  "MaxPool", "Concat"],
            extra_options=extra, **kwargs)


def convert_fp16(fp32_path: str | Path, out_path: str | Path, keep_fp32: Sequence[str] = ()) -> None:
    """Write an FP16 ONNX with float32 inputs and outputs; `keep_fp32` nodes stay in float32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True,
                                     node_block_list=list(keep_fp32) or None)
    onnx.save(model, str(out_path))


def layer_sensitivity(nodes: Sequence[str], lower_only: Callable[[str, Path], None],
                      error: Callable[[Path], float], progress: bool = True) -> list[tuple[str, float]]:
    """Error caused by lowering each layer alone, most harmful first.

    `lower_only(node, path)` writes a model with only `node` lowered; `error(path)` measures it
    against float32 (mean landmark displacement in input pixels).
    """
    from tqdm import tqdm

    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one.onnx"
        for node in tqdm(nodes, desc="layer sensitivity", disable=not progress, leave=False):
            lower_only(node, path)
            scores.append((node, error(path)))
    return sorted(scores, key=lambda s: -s[1])
