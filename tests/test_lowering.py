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


def test_int8_tensorrt_layout_is_symmetric_with_float_biases(trained_tiny, calibration, tmp_path):
    out = tmp_path / "m.int8.onnx"
    manifest = export_lowered(str(trained_tiny["onnx"]), out, "int8", str(calibration),
                              target="tensorrt", data_dir=str(trained_tiny["data"]), progress=False)
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


def test_int8_cpu_layout_uses_unsigned_activations(trained_tiny, calibration, tmp_path):
    out = tmp_path / "m.int8cpu.onnx"
    export_lowered(str(trained_tiny["onnx"]), out, "int8", str(calibration), target="cpu",
                   data_dir=str(trained_tiny["data"]), progress=False)
    _, inits, quants = _quantize_nodes(out)
    assert all(inits[q.input[2]].dtype == np.uint8 for q in quants)


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
