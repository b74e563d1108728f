"""Calibration sets, INT8 Q/DQ and FP16 export, and the accuracy gate, on a tiny trained model."""
import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeld.core.errors import UserError
from edgeld.core.letterbox import preprocess
from edgeld.core.manifest import Manifest
from edgeld.data import open_dataset
from edgeld.data.images import load_grayscale
from edgeld.export.calibration import build_calibration, load_calibration, select_images
from edgeld.export.lowered import export_lowered
from edgeld.runtime import LandmarkDetector

from conftest import REAL_DATA, needs_real_data, validated_run


@pytest.fixture(scope="module")
def tiny_io(trained_tiny):
    return Manifest.read(trained_tiny["onnx"]).io


@pytest.fixture(scope="module")
def calibration(trained_tiny, tiny_io, tmp_path_factory):
    out = tmp_path_factory.mktemp("cal") / "synthetic-8"
    build_calibration(trained_tiny["data"], "train", 8, out, tiny_io, "diverse", progress=False)
    return out


def test_calibration_manifest_and_tensors(calibration, trained_tiny, tiny_io):
    manifest = json.loads((calibration / "manifest.json").read_text())
    assert manifest["selection"] == {**manifest["selection"], "method": "diverse", "count": 8}
    assert len(manifest["images"]) == 8 and all(len(i["sha256"]) == 64 for i in manifest["images"])
    assert manifest["preprocess"]["input_height"] == 64
    cal = load_calibration(calibration)
    assert cal.tensors.shape == (8, 1, 64, 64) and cal.matches(tiny_io)
    first = open_dataset(trained_tiny["data"]).split("train")
    by_id = {s.image_id: s for s in first}
    expected, _ = preprocess(load_grayscale(by_id[manifest["images"][0]["id"]].path), 64, 64,
                             tiny_io.mean, tiny_io.std)
    assert np.array_equal(cal.tensors[0], expected)


def test_missing_tensors_are_regenerated_identically(calibration):
    before = load_calibration(calibration).tensors
    (calibration / "tensors.npy").unlink()
    after = load_calibration(calibration).tensors
    assert np.array_equal(before, after)


def test_selection_methods_and_errors(shared_dataset):
    samples = open_dataset(shared_dataset).split("train")
    assert select_images(samples, 3, "first") == [0, 1, 2]
    rnd = select_images(samples, 5, "random", seed=1)
    assert rnd == select_images(samples, 5, "random", seed=1) and len(set(rnd)) == 5
    div = select_images(samples, 5, "diverse", progress=False)
    assert len(set(div)) == 5
    with pytest.raises(UserError, match="--count"):
        select_images(samples, 99, "random")


def test_changed_calibration_image_is_refused(tmp_path, trained_tiny, tiny_io):
    from conftest import make_shared_dataset

    data = make_shared_dataset(tmp_path / "d", n_train=6, n_test=1)
    out = tmp_path / "cal"
    build_calibration(data, "train", 3, out, tiny_io, "first", progress=False)
    (out / "tensors.npy").unlink()
    (data / "images" / "001.png").write_bytes((data / "images" / "002.png").read_bytes())
    with pytest.raises(UserError, match="changed"):
        load_calibration(out)


def test_int8_needs_calibration(trained_tiny, tmp_path):
    with pytest.raises(UserError, match="calibration"):
        export_lowered(str(trained_tiny["onnx"]), tmp_path / "m.onnx", "int8")


def _quantize_nodes(path):
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return graph, inits, [n for n in graph.node if n.op_type == "QuantizeLinear"]


@pytest.fixture(scope="module")
def int8(trained_tiny, calibration, tmp_path_factory):
    """The tiny model lowered for each INT8 target once: target -> (path, manifest)."""
    out = {}
    for target in ("tensorrt", "cpu"):
        path = tmp_path_factory.mktemp("int8") / f"m.int8-{target}.onnx"
        manifest = export_lowered(str(trained_tiny["onnx"]), path, "int8", str(calibration),
                                  target=target, data_dir=str(trained_tiny["data"]), progress=False)
        out[target] = (path, manifest)
    return out


def test_int8_tensorrt_layout_is_symmetric_with_float_biases(int8):
    out, manifest = int8["tensorrt"]
    graph, inits, quants = _quantize_nodes(out)
    assert quants, "activations are quantized"
    for q in quants:
        zp = inits[q.input[2]]
        assert zp.dtype == np.int8 and not zp.any()
    for conv in (n for n in graph.node if n.op_type == "Conv" and len(n.input) == 3):
        bias = conv.input[2]
        assert bias in inits and inits[bias].dtype == np.float32  # not an int32 DQ input
    gate = manifest.section("gate")
    assert gate["mre_increase_mm"] <= gate["max_mre_increase_mm"] == 0.05
    assert manifest.section("lowering")["target"] == "tensorrt"
    assert manifest.artifact.precision == "int8"
    det = LandmarkDetector(out)
    assert det.detect(np.zeros((160, 128), np.uint8)).landmarks_px.shape == (3, 2)


def test_int8_cpu_layout_uses_unsigned_activations(int8):
    _, inits, quants = _quantize_nodes(int8["cpu"][0])
    assert all(inits[q.input[2]].dtype == np.uint8 for q in quants)


@pytest.mark.parametrize("target", ["tensorrt", "cpu"])
def test_int8_weights_are_per_channel_in_the_graph(int8, trained_tiny, target):
    """Read from the written graph, independently of the manifest: every weight layer not kept in
    float32 takes an INT8 initializer through a DequantizeLinear with one scale per output channel
    (axis 0, length = out channels), zero points 0, each channel using its own full range; and the
    manifest says what the graph holds."""
    path, manifest = int8[target]
    graph, inits, _ = _quantize_nodes(path)
    fp32 = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(trained_tiny["onnx"])).graph.initializer}
    dequant = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    kept = set(manifest.section("lowering")["kept_float32"])
    convs = [n for n in graph.node if n.op_type == "Conv"]
    quantized = [c for c in convs if c.input[1] in dequant]
    assert {c.name for c in convs} - {c.name for c in quantized} <= kept
    assert len(quantized) >= len(convs) - 1 and len(quantized) > 5
    for conv in quantized:
        dq = dequant[conv.input[1]]
        weight, scale = inits[dq.input[0]], inits[dq.input[1]]
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)  # ONNX's default is 1
        assert weight.dtype == np.int8 and axis == 0, conv.name
        assert scale.shape == (weight.shape[0],), f"{conv.name}: scale {scale.shape}, weight {weight.shape}"
        zero = inits[dq.input[2]]
        assert zero.shape == scale.shape and zero.dtype == np.int8 and not zero.any()
        assert len(np.unique(scale)) > 1  # really one scale per channel, not one repeated
        # symmetric min-max per channel: each output channel reaches +-127 on its own
        assert (np.abs(weight).reshape(len(weight), -1).max(1) == 127).all(), conv.name
        original = fp32[dq.input[0].removesuffix("_quantized")]
        step = scale.reshape(-1, *[1] * (weight.ndim - 1))
        assert np.all(np.abs(weight * step - original) <= step / 2 + 1e-6), conv.name
    lowering = manifest.section("lowering")
    assert lowering["weights"] == "int8, per-channel, symmetric"
    assert lowering["int8_weight_layers"] == len(quantized)


def test_manifest_weight_description_comes_from_the_graph(int8, trained_tiny, tmp_path):
    """A per-tensor Q/DQ graph (ONNX Runtime's quantizer with per_channel=False) is described as
    such: the words are read from the graph, not a fixed string."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from edgeld.export.precision import (_Reader, describe_int8_weights, int8_weight_layout,
                                         prepare_for_quantization)

    path, manifest = int8["tensorrt"]
    layout = int8_weight_layout(path)
    assert layout["layers"] == layout["per_channel"] == layout["symmetric"] > 5
    prepared, per_tensor = tmp_path / "prepared.onnx", tmp_path / "per-tensor.onnx"
    prepare_for_quantization(trained_tiny["onnx"], prepared)
    io = manifest.io
    tensors = np.random.default_rng(0).normal(size=(2, 1, io.input_height, io.input_width)).astype(np.float32)
    quantize_static(str(prepared), str(per_tensor), _Reader(io.input_name, tensors),
                    quant_format=QuantFormat.QDQ, per_channel=False, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8, extra_options={"WeightSymmetric": True})
    flat = int8_weight_layout(per_tensor)
    assert flat["layers"] > 5 and flat["per_channel"] == 0
    assert describe_int8_weights(flat) == "int8, per-tensor, symmetric"
    assert describe_int8_weights({"layers": 4, "per_channel": 3, "symmetric": 2}) == \
        "int8, per-channel in 3 of 4 layers, zero points not all 0"


def test_fp16_keeps_float32_io_and_passes_its_gate(trained_tiny, tmp_path):
    out = tmp_path / "m.fp16.onnx"
    manifest = export_lowered(str(trained_tiny["onnx"]), out, "fp16",
                              data_dir=str(trained_tiny["data"]), progress=False)
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    assert abs(manifest.section("gate")["mre_increase_mm"]) <= 0.01


def test_gate_keeps_sensitive_layers_in_float32(trained_tiny, calibration, tmp_path):
    """Ranges squeezed 1000x clip every activation: the gate must measure the damage, rank the
    layers and keep the harmful ones in float32 until the MRE is back within the limit."""
    squeezed = tmp_path / "squeezed"
    squeezed.mkdir()
    cal = load_calibration(calibration)
    from edgeld.export.calibration import _write_tensors

    _write_tensors(squeezed, cal.tensors * 1e-3, dict(cal.manifest, name="squeezed"))
    out = tmp_path / "kept.int8.onnx"
    manifest = export_lowered(str(trained_tiny["onnx"]), out, "int8", str(squeezed),
                              data_dir=str(trained_tiny["data"]), max_mre_increase=0.0,
                              progress=False)
    lowering = manifest.section("lowering")
    assert lowering["kept_float32"], "clipped ranges must force some layers back to float32"
    assert set(lowering["kept_float32"]) <= set(lowering["sensitivity_px"])
    ranked = list(lowering["sensitivity_px"].values())
    assert ranked == sorted(ranked, reverse=True)
    assert manifest.section("gate")["mre_increase_mm"] <= 0.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".edgeld-export-")]


def test_cli_int8_without_calibration_exits_2(trained_tiny, tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "edgeld", "export", str(trained_tiny["onnx"]),
                          "--to", "int8", "--out", str(tmp_path / "x.onnx")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "calibration" in res.stderr and "Traceback" not in res.stderr


def _calibration_holding(trained_tiny, tiny_io, ids, root):
    """A calibration set of exactly `ids`, built from a copy of the dataset (the gate must match
    images by content, not by path)."""
    import shutil

    data = root / "copy"
    shutil.copytree(trained_tiny["data"], data)
    (data / "chosen.txt").write_text("\n".join(ids) + "\n")
    out = root / "cal-chosen"
    build_calibration(data, "chosen", len(ids), out, tiny_io, "first", progress=False)
    return out


def test_int8_gate_leaves_out_calibration_images(trained_tiny, tiny_io, tmp_path):
    validation = Manifest.read(trained_tiny["onnx"]).source["validation"]["images"]
    assert len(validation) == 3
    others = [s.image_id for s in open_dataset(trained_tiny["data"]).split("train")
              if s.image_id not in validation]
    cal = _calibration_holding(trained_tiny, tiny_io, validation[:2] + others[:3], tmp_path)
    lines = []
    manifest = export_lowered(str(trained_tiny["onnx"]), tmp_path / "m.onnx", "int8", str(cal),
                              data_dir=str(trained_tiny["data"]), progress=False, echo=lines.append)
    gate = manifest.section("gate")
    assert gate["excluded_calibration_images"] == validation[:2]
    assert gate["n_images"] == 1
    assert "2 of its images are calibration images and are left out; 1 remain" in "\n".join(lines)


def test_int8_gate_with_no_image_left_is_refused(trained_tiny, tiny_io, tmp_path):
    validation = Manifest.read(trained_tiny["onnx"]).source["validation"]["images"]
    cal = _calibration_holding(trained_tiny, tiny_io, validation, tmp_path)
    with pytest.raises(UserError, match="every one of the gate's 3 images"):
        export_lowered(str(trained_tiny["onnx"]), tmp_path / "m.onnx", "int8", str(cal),
                       data_dir=str(trained_tiny["data"]), progress=False)
    assert not (tmp_path / "m.onnx").exists()


def test_int8_gate_record_names_the_overlap_of_the_diverse_set(int8, calibration, trained_tiny):
    validation = Manifest.read(trained_tiny["onnx"]).source["validation"]["images"]
    chosen = {i["id"] for i in json.loads((calibration / "manifest.json").read_text())["images"]}
    overlap = [v for v in validation if v in chosen]
    for _, manifest in int8.values():
        gate = manifest.section("gate")
        assert gate["excluded_calibration_images"] == overlap
        assert gate["n_images"] == len(validation) - len(overlap)


@needs_real_data
def test_shipped_student_gate_and_committed_calibration_are_disjoint(tmp_path):
    """The issue's case: 5 of the validated student's 20 validation images are in
    calibration/isbi2015-train-diverse64; the gate keeps the other 15. The shipped student,
    trained on every image, records none: its gate on `--split train` keeps the 86 that are not
    calibration images."""
    from pathlib import Path

    from edgeld.export.gate import Gate
    from edgeld.model_ref import resolve_model

    cal = json.loads((Path(__file__).resolve().parents[1] / "calibration" /
                      "isbi2015-train-diverse64" / "manifest.json").read_text())
    hashes = [i["sha256"] for i in cal["images"]]
    ref = resolve_model(validated_run(tmp_path) / "student.safetensors")
    validation = {"split": "train", "images": ref.metadata["training"]["val_images"]}
    gate = Gate.load(ref.io, REAL_DATA, None, validation, hashes)
    assert len(gate.excluded) == 5 and len(gate.images) == 15
    assert set(gate.excluded) <= {i["id"] for i in cal["images"]}
    shipped = resolve_model("isbi2015-student")
    assert shipped.metadata["training"]["val_images"] == []
    with pytest.raises(UserError, match="give --split NAME"):
        Gate.load(shipped.io, REAL_DATA, None, {"split": "train", "images": []}, hashes)
    gate = Gate.load(shipped.io, REAL_DATA, "train", {"split": "train", "images": []}, hashes)
    assert len(gate.excluded) == 64 and len(gate.images) == 86
