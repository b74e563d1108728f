"""TensorRT engines: build decisions, cache keys, compatibility, profiles, manifests, the runner.

The decisions are pure functions and are tested everywhere. Building and running real engines
needs TensorRT and an NVIDIA GPU: those tests are written in full and skip where either is missing.
Fakes below stand in for absent hardware and say so.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeld.core.contract import HeatmapSpec, InputSpec, ModelIO
from edgeld.core.errors import UserError
from edgeld.core.files import atomic_write_bytes, sha256_file
from edgeld.core.manifest import ArtifactEntry, Manifest
from edgeld.export import tensorrt as trt_export
from edgeld.export.tensorrt import (build_engine, builder_config, calibration_cache_key,
                                    check_batch_sizes, check_build_request, check_network_input,
                                    engine_bytes, engine_manifest, inspect_onnx_precision,
                                    layer_precisions, network_from_onnx, parse_trt_version,
                                    plan_build, profile_shapes, read_onnx_artifact)
from edgeld.runtime import tensorrt_runner as trt_runner
from edgeld.runtime.runners import InactiveRunnerError
from edgeld.runtime.tensorrt_runner import (DeviceFacts, Profile, TensorRTRunner, batch_plan,
                                            check_input_shape, compute_capability_str, cuda_check,
                                            cuda_error, engine_compatibility, tensor_nbytes)

needs_tensorrt = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                                    reason="TensorRT is not installed on this machine (no NVIDIA GPU)")

IO = ModelIO(InputSpec(16, 16, 0.5, 0.25), HeatmapSpec(4, 1.5), ("a", "b", "c"))
ONNX_PRECISION = {"fp32": "fp32", "fp16": "fp16", "qdq": "int8", "qdq_uint8": "int8"}


# ---------------------------------------------------------------- tiny ONNX models made here

def tiny_model(kind: str = "fp32", batch: str | int = "N"):
    """image (N, 1, 16, 16) -> 3x3 conv, stride 4 -> heatmaps (N, 3, 4, 4), in the given precision."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (3, 1, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 3).astype(np.float32)
    conv = dict(kernel_shape=[3, 3], strides=[4, 4], pads=[1, 1, 1, 1])
    nodes, inits = [], []
    if kind == "fp32":
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
        nodes = [helper.make_node("Conv", ["image", "w", "b"], ["heatmaps"], **conv)]
    elif kind == "fp16":  # float32 I/O, float16 inside, as an AutoCast-style FP16 export
        inits = [numpy_helper.from_array(w.astype(np.float16), "w"),
                 numpy_helper.from_array(b.astype(np.float16), "b")]
        nodes = [helper.make_node("Cast", ["image"], ["x16"], to=TensorProto.FLOAT16),
                 helper.make_node("Conv", ["x16", "w", "b"], ["y16"], **conv),
                 helper.make_node("Cast", ["y16"], ["heatmaps"], to=TensorProto.FLOAT)]
    elif kind in ("qdq", "qdq_uint8"):  # symmetric INT8 Q/DQ on input and weights, bias in float
        zdtype = np.int8 if kind == "qdq" else np.uint8
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
                 numpy_helper.from_array(np.array(4.0 / 127, np.float32), "sx"),
                 numpy_helper.from_array(np.array(np.abs(w).max() / 127, np.float32), "sw"),
                 numpy_helper.from_array(np.array(0, zdtype), "zx"),
                 numpy_helper.from_array(np.array(0, np.int8), "zw")]
        nodes = [helper.make_node("QuantizeLinear", ["image", "sx", "zx"], ["xq"], name="q_image"),
                 helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xdq"], name="dq_image"),
                 helper.make_node("QuantizeLinear", ["w", "sw", "zw"], ["wq"], name="q_w"),
                 helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wdq"], name="dq_w"),
                 helper.make_node("Conv", ["xdq", "wdq", "b"], ["heatmaps"], **conv)]
    else:
        raise ValueError(kind)
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 1, 16, 16])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [batch, 3, 4, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def write_onnx(folder, kind: str = "fp32", batch: str | int = "N"):
    """A tiny ONNX with an edgeld manifest beside it, as `edgeld export` would leave it."""
    path = folder / f"tiny_{kind}.onnx"
    atomic_write_bytes(path, tiny_model(kind, batch).SerializeToString())
    Manifest(ArtifactEntry(file=path.name, sha256=sha256_file(path), bytes=path.stat().st_size,
                           kind="onnx", opset=17, precision=ONNX_PRECISION[kind]),
             IO, source={"model": "tiny"}).write(path)
    return path


def infer_once(engine, x: np.ndarray) -> np.ndarray:
    """One inference on a real engine, releasing its CUDA context and buffers afterwards."""
    with TensorRTRunner(engine) as runner:
        return runner.infer(x)


def reference_logits(onnx_path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


# ---------------------------------------------------------------- build plans per TensorRT version

F, T = False, True
PLANS = [  # version, precision, onnx_is_qdq, onnx_is_fp16, legacy -> strongly_typed, set_flags, calibrator
    *[(v, "fp32", F, F, F, T, (), F) for v in ("10.3.0", "10.14.1.48", "11.0.0")],
    ("10.3.0", "fp16", F, F, F, F, ("FP16",), F),
    ("10.14.1.48", "fp16", F, F, F, F, ("FP16",), F),
    *[(v, "fp16", F, T, F, T, (), F) for v in ("10.3.0", "10.14.1.48", "11.0.0")],
    ("10.3.0", "int8", T, F, F, F, ("INT8",), F),
    ("10.14.1.48", "int8", T, F, F, F, ("INT8",), F),
    ("11.0.0", "int8", T, F, F, T, (), F),
    *[(v, "int8", T, T, F, T, (), F) for v in ("10.3.0", "10.14.1.48", "11.0.0")],
    ("10.3.0", "int8", F, F, T, F, ("INT8",), T),
    ("10.14.1.48", "int8", F, F, T, F, ("INT8",), T),
]


@pytest.mark.parametrize("version,precision,qdq,fp16,legacy,strong,flags,calibrator", PLANS)
def test_plan_per_version_and_precision(version, precision, qdq, fp16, legacy, strong, flags,
                                        calibrator):
    plan = plan_build(version, precision, qdq, fp16, legacy)
    assert (plan.strongly_typed, plan.set_flags, plan.legacy_calibrator) == (strong, flags, calibrator)
    assert plan.precision == precision and plan.trt_version == version
    assert plan.clear_flags == (("TF32",) if precision == "fp32" else ())  # fp32 means FP32 products
    if calibrator:
        assert "deprecated" in plan.notes[0]
    assert json.loads(json.dumps(plan.to_dict()))["set_flags"] == list(flags)


REFUSALS = [  # version, precision, qdq, fp16, legacy -> message fragment
    ("9.3.0", "fp32", F, F, F, "too old"),
    ("8.6.1", "fp16", F, F, F, "TensorRT 10 or newer"),
    ("10.3.0", "int8", F, F, F, "--to int8 --calibration"),
    ("10.14.1.48", "int8", F, F, F, "legacy calibrator on TensorRT 10"),
    ("11.0.0", "int8", F, F, F, "--to int8 --calibration"),
    ("11.0.0", "int8", F, T, F, "this one is FP16"),
    ("11.0.0", "int8", F, F, T, "removed the implicit INT8 calibrators"),
    ("11.0.0", "fp16", F, F, F, "--to fp16"),
    ("10.3.0", "fp32", F, T, F, "this ONNX is FP16"),
    ("11.0.0", "fp32", T, F, F, "this ONNX is INT8 Q/DQ"),
    ("10.14.1.48", "fp16", T, F, F, "ask for an int8 engine"),
    ("10.3.0", "int8", T, F, T, "already holds Q/DQ scales"),
    ("10.3.0", "int8", F, T, T, "needs the FP32 ONNX"),
    ("10.3.0", "fp16", F, F, T, "only applies to int8"),
    ("10.3.0", "bf16", F, F, F, "unknown engine precision"),
]


@pytest.mark.parametrize("version,precision,qdq,fp16,legacy,fragment", REFUSALS)
def test_plan_refusals_say_what_to_do(version, precision, qdq, fp16, legacy, fragment):
    with pytest.raises(UserError, match=fragment) as info:
        plan_build(version, precision, qdq, fp16, legacy)
    assert "\n" not in str(info.value)


def test_parse_trt_version():
    assert parse_trt_version("10.3.0.30") == (10, 3, 0, 30)
    assert parse_trt_version("11.0") == (11, 0)
    assert parse_trt_version("10.14.1rc2") == (10, 14, 1)
    with pytest.raises(ValueError):
        parse_trt_version("unknown")


# ---------------------------------------------------------------- calibration cache key

KEY_INPUTS = dict(onnx_sha256="a" * 64, calibration_manifest_sha256="b" * 64,
                  trt_version="10.3.0.30", gpu_name="Orin", compute_capability="8.7")
# pinned: a changed key silently orphans every calibration cache on deployed devices
KEY = "258ff5c26de36bc5d1dbd70fc7d1c5a5926fdd372a5d72ab4f4bc808f28df439"


def test_cache_key_is_stable():
    key = calibration_cache_key(**KEY_INPUTS)
    assert key == KEY
    assert calibration_cache_key(**{**KEY_INPUTS, "compute_capability": (8, 7)}) == key
    assert calibration_cache_key(**{**KEY_INPUTS, "onnx_sha256": "A" * 64}) == key  # hex case


@pytest.mark.parametrize("field,value", [("onnx_sha256", "c" * 64),
                                         ("calibration_manifest_sha256", "c" * 64),
                                         ("trt_version", "10.3.0.31"), ("gpu_name", "NVIDIA A10"),
                                         ("compute_capability", "8.6")])
def test_cache_key_changes_with_each_input(field, value):
    assert calibration_cache_key(**{**KEY_INPUTS, field: value}) != KEY


# ---------------------------------------------------------------- engine manifest and compatibility

def fake_manifest(tmp_path, device: DeviceFacts | None = None, precision: str = "fp16"):
    """An engine manifest from the pure helper, for bytes that stand in for an engine (no GPU here)."""
    device = device or DeviceFacts("10.3.0.30", "Orin", "8.7", "12.6", "12.6")
    engine = tmp_path / "tiny.engine"
    atomic_write_bytes(engine, b"stands in for a serialized engine")
    onnx_manifest = Manifest(ArtifactEntry(file="tiny.onnx", sha256="e" * 64, kind="onnx",
                                           precision="fp32"), IO, source={"model": "tiny"})
    plan = plan_build(device.tensorrt, precision, False, False, False)
    manifest = engine_manifest(
        engine_file=engine.name, engine_sha256=sha256_file(engine), engine_bytes=engine.stat().st_size,
        onnx_name="tiny.onnx", onnx_manifest=onnx_manifest, plan=plan, device=device,
        profile=profile_shapes(IO, (1, 2, 4)), timing_cache=None, workspace_mb=1024,
        layers=[{"name": "conv", "type": "CaskConvolution", "precision": "fp16"}], calibration=None,
        build_seconds=12.345, tools={"edgeld": "0.1.0"})
    manifest.write(engine)
    return engine, manifest


def test_engine_manifest_structure(tmp_path):
    engine, manifest = fake_manifest(tmp_path)
    assert Manifest.read(engine) == manifest  # valid format, sha256 matches the file
    assert manifest.artifact == ArtifactEntry(file="tiny.engine", sha256=sha256_file(engine),
                                              bytes=engine.stat().st_size, kind="engine",
                                              precision="fp16")
    assert manifest.io == IO
    assert manifest.source == {"onnx": "tiny.onnx", "onnx_sha256": "e" * 64,
                               "onnx_precision": "fp32", "model": "tiny"}
    rt = manifest.section("tensorrt")
    assert (rt["version"], rt["gpu"], rt["compute_capability"], rt["cuda"]) == (
        "10.3.0.30", "Orin", "8.7", "12.6")
    assert rt["strongly_typed"] is False and rt["flags"] == ["FP16"] and rt["timing_cache"] is None
    assert rt["profile"] == {"input": "image", "min": [1, 1, 16, 16], "opt": [2, 1, 16, 16],
                             "max": [4, 1, 16, 16]}
    assert manifest.sections["layers"][0]["precision"] == "fp16"
    assert manifest.sections["build_seconds"] == 12.35
    engine_compatibility(manifest, "10.3.0.30", "Orin", (8, 7))  # the machine it was built on


@pytest.mark.parametrize("trt_version,gpu,cc,fragment", [
    ("10.3.0.31", "Orin", "8.7", "TensorRT 10.3.0.30 \\(this machine has TensorRT 10.3.0.31\\)"),
    ("10.3.0.30", "NVIDIA A10", "8.6",
     "Orin with compute capability 8.7 \\(this machine has NVIDIA A10, 8.6\\)"),
    ("10.3.0.30", "Orin", "8.6", "compute capability 8.7"),
    ("10.3.0.30", "NVIDIA RTX A2000", "8.7", "this machine has NVIDIA RTX A2000"),
])
def test_mismatched_engine_is_refused_with_rebuild_command(tmp_path, trt_version, gpu, cc, fragment):
    _, manifest = fake_manifest(tmp_path)
    with pytest.raises(UserError, match=fragment) as info:
        engine_compatibility(manifest, trt_version, gpu, cc)
    message = str(info.value)
    assert "edgeld export tiny.onnx --to engine --out tiny.engine" in message and "\n" not in message


def test_non_engine_manifest_is_refused():
    with pytest.raises(UserError, match="does not describe a TensorRT engine"):
        engine_compatibility(Manifest(ArtifactEntry(file="m.onnx", sha256="0" * 64), IO),
                             "10.3", "Orin", "8.7")


def test_compute_capability_spellings():
    assert compute_capability_str("8.7") == compute_capability_str((8, 7)) == "8.7"
    assert compute_capability_str(" 8.7") == "8.7"
    with pytest.raises(ValueError):
        compute_capability_str("sm87")


# ---------------------------------------------------------------- profiles, shapes, buffers

def test_batch_sizes_and_profile_shapes():
    assert check_batch_sizes((1, 1, 8)) == (1, 1, 8)
    for bad in [(0, 1, 8), (2, 1, 8), (1, 9, 8), (1, 8), ("a", 1, 2)]:
        with pytest.raises(UserError, match="batch sizes"):
            check_batch_sizes(bad)
    assert profile_shapes(IO, (1, 4, 8))["opt"] == [4, 1, 16, 16]


def test_network_input_checks():
    check_network_input("image", (-1, 1, 16, 16), IO, (1, 1, 8))
    check_network_input("image", (4, 1, 16, 16), IO, (4, 4, 4))
    with pytest.raises(UserError, match="input is 'x'"):
        check_network_input("x", (-1, 1, 16, 16), IO, (1, 1, 8))
    with pytest.raises(UserError, match="not \\(N, 1, 16, 16\\)"):
        check_network_input("image", (-1, 1, 32, 16), IO, (1, 1, 8))
    with pytest.raises(UserError, match="fixed batch of 1"):
        check_network_input("image", (1, 1, 16, 16), IO, (1, 1, 8))


PROFILE = Profile((2, 1, 16, 16), (4, 1, 16, 16), (4, 1, 16, 16))


def test_batch_plan_chunks_and_pads_within_the_profile():
    assert batch_plan(3, PROFILE) == [(0, 3, 3)]
    assert batch_plan(1, PROFILE) == [(0, 1, 2)]  # padded up to the minimum batch
    assert batch_plan(9, PROFILE) == [(0, 4, 4), (4, 8, 4), (8, 9, 2)]
    with pytest.raises(UserError, match="empty"):
        batch_plan(0, PROFILE)


def test_input_shape_checks():
    check_input_shape((7, 1, 16, 16), PROFILE)
    with pytest.raises(UserError, match="shape \\(N, 1, 16, 16\\)"):
        check_input_shape((2, 1, 32, 32), PROFILE)
    with pytest.raises(UserError, match="shape \\(N, 1, 16, 16\\)"):
        check_input_shape((1, 16, 16), PROFILE)


def test_tensor_nbytes():
    assert tensor_nbytes((8, 3, 4, 4), np.float32) == 8 * 3 * 4 * 4 * 4
    assert tensor_nbytes((2, 5), np.float16) == 20
    with pytest.raises(ValueError, match="dynamic"):
        tensor_nbytes((-1, 3), np.float32)


# ---------------------------------------------------------------- CUDA errors and imports

def test_cuda_errors_map_to_user_or_internal():
    ok = types.SimpleNamespace(value=0, name="cudaSuccess")
    assert cuda_check((ok, 1234), "cudaMalloc") == 1234
    assert cuda_check((ok,), "cudaFree") is None
    assert cuda_check((ok, 1, 2), "x") == (1, 2)
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        cuda_check((types.SimpleNamespace(value=100, name="cudaErrorNoDevice"),), "cudaGetDevice")
    assert isinstance(cuda_error("cudaErrorMemoryAllocation", "cudaMalloc"), UserError)
    assert isinstance(cuda_error("cudaErrorIllegalAddress", "cudaMemcpyAsync"), RuntimeError)
    assert not isinstance(cuda_error("cudaErrorIllegalAddress", "cudaMemcpyAsync"), UserError)


def test_missing_tensorrt_and_cuda_python_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import now fails even where installed
    with pytest.raises(UserError, match=r"tensorrt is not installed: pip install 'edgeld\[trt\]'"):
        trt_runner.import_tensorrt()
    monkeypatch.setitem(sys.modules, "cuda", None)
    with pytest.raises(UserError, match=r"cuda-python is not installed: pip install 'edgeld\[trt\]'"):
        trt_runner.import_cudart()


def test_cudart_falls_back_to_the_older_layout(monkeypatch):
    old_layout = types.ModuleType("cuda")
    old_layout.cudart = "old cudart module"
    monkeypatch.setitem(sys.modules, "cuda", old_layout)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    assert trt_runner.import_cudart() == "old cudart module"


# ---------------------------------------------------------------- ONNX precision and inspector JSON

@pytest.mark.parametrize("kind,precision,problems", [("fp32", "fp32", 0), ("fp16", "fp16", 0),
                                                     ("qdq", "int8", 0), ("qdq_uint8", "int8", 2)])
def test_onnx_precision_is_read_from_the_graph(kind, precision, problems):
    found = inspect_onnx_precision(tiny_model(kind))
    assert found.precision == precision and len(found.qdq_problems) == problems
    if problems:
        assert "UINT8, not INT8" in found.qdq_problems[0]


def test_layer_precisions_from_both_inspector_schemas():
    trt10 = {"Layers": [
        {"Name": "conv", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "x", "Format/Datatype": "Row major linear FP32 format"}],
         "Outputs": [{"Name": "y",
                      "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}]},
        {"Name": "reformat", "LayerType": "Reformat",
         "Outputs": [{"Name": "z", "Format/Datatype": "Row major linear FP16 format"}]},
        {"Name": "shuffle", "LayerType": "NoOp",
         "Outputs": [{"Name": "s", "Format/Datatype": "N/A due to dynamic shapes"}]}],
        "Bindings": ["x", "z"]}
    trt11 = {"Layers": [{"Name": "conv", "LayerType": "CaskConvolution",
                         "Outputs": [{"Name": "y", "Format": "kLINEAR", "DataType": "Half"},
                                     {"Name": "y2", "Format": "kLINEAR", "DataType": "Float"}]},
                        {"Name": "cast", "LayerType": "Cast", "Outputs": [{"DataType": "BFloat16"}]}],
             "I/O Tensors": []}
    assert [layer["precision"] for layer in layer_precisions(json.dumps(trt10))] == ["int8", "fp16", None]
    assert [layer["precision"] for layer in layer_precisions(json.dumps(trt11))] == ["mixed", "bf16"]
    assert layer_precisions(json.dumps({"Layers": ["conv", "relu"]})) is None  # names only
    assert layer_precisions("not json") is None


# ---------------------------------------------------------------- build_engine before TensorRT

def test_build_engine_checks_arguments_before_needing_tensorrt(tmp_path, monkeypatch):
    onnx_path = write_onnx(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(UserError, match="must end in .engine"):
        build_engine(onnx_path, tmp_path / "tiny.plan")
    with pytest.raises(UserError, match="ONNX file not found"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "tiny.engine")
    with pytest.raises(UserError, match="batch sizes"):
        build_engine(onnx_path, tmp_path / "tiny.engine", batch_sizes=(4, 1, 8))
    with pytest.raises(UserError, match="calibration set not found"):
        build_engine(onnx_path, tmp_path / "tiny.engine", precision="int8",
                     legacy_int8_calibration=tmp_path / "nope")
    with pytest.raises(UserError, match="symmetric INT8 Q/DQ only.*--to int8 --calibration"):
        build_engine(write_onnx(tmp_path, "qdq_uint8"), tmp_path / "tiny.engine", "int8")
    with pytest.raises(UserError, match=r"tensorrt is not installed: pip install 'edgeld\[trt\]'"):
        build_engine(onnx_path, tmp_path / "tiny.engine")
    atomic_write_bytes(onnx_path, onnx_path.read_bytes() + b"\0")
    with pytest.raises(UserError, match="sha256"):
        build_engine(onnx_path, tmp_path / "tiny.engine")
    assert not (tmp_path / "tiny.engine").exists()


def test_tensorrt_modules_never_import_torch():
    code = """
import sys
sys.modules["torch"] = None
import edgeld.runtime.tensorrt_runner, edgeld.export.tensorrt
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m])
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


# ---------------------------------------------------------------- the runner's plumbing, faked

class FakeDevice:
    """Stands in for absent hardware (no NVIDIA GPU here): CUDA device memory as numpy byte arrays,
    with the same operations as edgeld's cuda-python wrapper."""

    def __init__(self, gpu: str = "Fake GPU"):
        self.gpu, self.memory, self.next, self.streams = gpu, {}, 4096, 0

    def malloc(self, nbytes):
        ptr, self.next = self.next, self.next + nbytes + 256
        self.memory[ptr] = np.zeros(nbytes, np.uint8)
        return ptr

    def free(self, ptr):
        del self.memory[ptr]

    def stream(self):
        self.streams += 1
        return "stream"

    def stream_handle(self, stream):
        return 7

    def destroy_stream(self, stream):
        self.streams -= 1

    def to_device(self, ptr, host, stream):
        self.memory[ptr][: host.nbytes] = np.ascontiguousarray(host).reshape(-1).view(np.uint8)

    def to_host(self, host, ptr, stream):
        host.reshape(-1).view(np.uint8)[:] = self.memory[ptr][: host.nbytes]

    def synchronize(self, stream):
        pass

    def device_facts(self, trt_version):
        return DeviceFacts(trt_version, self.gpu, "8.7", "12.6", "12.6")


class FakeTensorRT:
    """Stands in for absent hardware (no TensorRT or GPU here): the slice of TensorRT's runtime API
    the runner calls, computing a known function on FakeDevice memory (4x4 average pooling times
    k + 1 for landmark k), so the runner's chunking, padding and buffer handling can be checked."""

    __version__ = "10.3.0.30"

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    class TensorIOMode:
        INPUT, OUTPUT = "input", "output"

    # the builder's side (see FakeBuilder): enum members stand in as their names
    class BuilderFlag:
        FP16, INT8, TF32 = "FP16", "INT8", "TF32"

    class MemoryPoolType:
        WORKSPACE = "WORKSPACE"

    class ProfilingVerbosity:
        DETAILED = "DETAILED"

    class NetworkDefinitionCreationFlag:
        STRONGLY_TYPED = 1  # a bit position, as TensorRT's enum values are

    class LayerInformationFormat:
        JSON = "JSON"

    class IInt8EntropyCalibrator2:
        def __init__(self):
            pass

    def __init__(self, device: FakeDevice, profile: Profile):
        self.device, self.profile, self.executed = device, profile, []
        self.builders: list[FakeBuilder] = []
        self.parse_errors: list[str] = []  # set to make parse_from_file fail with these
        self.build_fails = False  # build_serialized_network returns None, as TensorRT does

    def Runtime(self, logger):
        return types.SimpleNamespace(deserialize_cuda_engine=lambda data: FakeEngine(self))

    def Builder(self, logger):
        self.builders.append(FakeBuilder(self))
        return self.builders[-1]

    def OnnxParser(self, network, logger):
        return FakeParser(self, network)

    @staticmethod
    def nptype(dtype):
        return np.float32


class FakeEngine:
    """Stands in for a deserialized engine on absent hardware (see FakeTensorRT)."""

    num_io_tensors = 2

    def __init__(self, trt: FakeTensorRT):
        self.trt = trt

    def get_tensor_name(self, i):
        return ("image", "heatmaps")[i]

    def get_tensor_mode(self, name):
        return self.trt.TensorIOMode.INPUT if name == "image" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return "FLOAT"

    def get_tensor_profile_shape(self, name, index):
        assert (name, index) == ("image", 0)
        return self.trt.profile.min, self.trt.profile.opt, self.trt.profile.max

    def create_execution_context(self):
        return FakeContext(self.trt)

    def create_engine_inspector(self):
        return FakeInspector()


class FakeContext:
    """Stands in for an execution context on absent hardware (see FakeTensorRT)."""

    def __init__(self, trt: FakeTensorRT):
        self.trt, self.shape, self.addresses = trt, None, {}

    def set_input_shape(self, name, shape):
        p = self.trt.profile
        self.shape = tuple(shape)
        return p.min_batch <= shape[0] <= p.max_batch and tuple(shape[1:]) == p.max[1:]

    def get_tensor_shape(self, name):
        return self.shape if name == "image" else (self.shape[0], 3, 4, 4)

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle):
        memory = self.trt.device.memory
        n = self.shape[0]
        x = memory[self.addresses["image"]][: n * 16 * 16 * 4].view(np.float32).reshape(self.shape)
        y = fake_heatmaps(x)
        memory[self.addresses["heatmaps"]][: y.nbytes] = y.reshape(-1).view(np.uint8)
        self.trt.executed.append(n)
        return True


class FakeInspector:
    """Stands in for IEngineInspector on absent hardware: TensorRT 10's JSON schema, whose
    tensor types resolve only once an execution context with the input shape is attached."""

    def __init__(self):
        self.context = None

    def get_engine_information(self, fmt):
        assert fmt == FakeTensorRT.LayerInformationFormat.JSON
        kind = "Row major linear FP32 format" if self.context is not None else "N/A due to dynamic shapes"
        return json.dumps({"Layers": [{"Name": "conv", "LayerType": "CaskConvolution",
                                       "Outputs": [{"Name": "heatmaps", "Format/Datatype": kind}]}]})


FAKE_CACHE = b"fake timing cache for Fake GPU"
FAKE_ENGINE = b"fake serialized engine"


class FakeBuilder:
    """Stands in for trt.Builder on absent hardware (no TensorRT or GPU here): records what the
    build steps ask for; `build_serialized_network` runs a legacy calibrator the way TensorRT
    documents (cache first, else batches until None, then write the cache) and returns bytes."""

    def __init__(self, trt: FakeTensorRT):
        self.trt, self.network_flags, self.calibrated = trt, None, []

    def create_network(self, flags):
        self.network_flags = flags
        return FakeNetwork()

    def create_builder_config(self):
        self.config = FakeConfig()
        return self.config

    def create_optimization_profile(self):
        return FakeOptimizationProfile()

    def build_serialized_network(self, network, config):
        calibrator = config.int8_calibrator
        if calibrator is not None and calibrator.read_calibration_cache() is None:
            while (pointers := calibrator.get_batch(["image"])) is not None:
                self.calibrated.append(self.trt.device.memory[pointers[0]].copy())
            calibrator.write_calibration_cache(b"fake calibration table")
        return None if self.trt.build_fails else FAKE_ENGINE


class FakeNetwork:
    """Stands in for INetworkDefinition on absent hardware: only its inputs."""

    def __init__(self):
        self.inputs = []

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, i):
        return self.inputs[i]


class FakeParser:
    """Stands in for trt.OnnxParser on absent hardware: reads the ONNX's one input with onnx."""

    def __init__(self, trt: FakeTensorRT, network):
        self.trt, self.network = trt, network
        self.num_errors = 0

    def parse_from_file(self, path):
        import onnx

        if self.trt.parse_errors:
            self.num_errors = len(self.trt.parse_errors)
            return False
        graph = onnx.load(path).graph
        inputs = [types.SimpleNamespace(
            name=v.name, shape=tuple(d.dim_value if d.HasField("dim_value") else -1
                                     for d in v.type.tensor_type.shape.dim)) for v in graph.input]
        self.network.inputs = inputs
        return True

    def get_error(self, i):
        return self.trt.parse_errors[i]


class FakeConfig:
    """Stands in for IBuilderConfig on absent hardware: records flags, pools, profiles, caches."""

    def __init__(self):
        self.flags, self.cleared, self.pools, self.profiles = set(), set(), {}, []
        self.profiling_verbosity = self.timing_cache = self.int8_calibrator = None
        self.calibration_profile = None

    def set_memory_pool_limit(self, pool, size):
        self.pools[pool] = size

    def set_flag(self, flag):
        self.flags.add(flag)

    def clear_flag(self, flag):
        self.cleared.add(flag)

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile):
        self.calibration_profile = profile

    def create_timing_cache(self, data):
        return types.SimpleNamespace(data=bytes(data), serialize=lambda: FAKE_CACHE)

    def set_timing_cache(self, cache, ignore_mismatch):
        assert ignore_mismatch is False
        if cache.data not in (b"", FAKE_CACHE):
            return False  # TensorRT's answer to a cache from another version or GPU
        self.timing_cache = cache
        return True

    def get_timing_cache(self):
        return self.timing_cache


class FakeOptimizationProfile:
    """Stands in for IOptimizationProfile on absent hardware."""

    def set_shape(self, name, lo, opt, hi):
        self.shape = (name, tuple(lo), tuple(opt), tuple(hi))


def fake_heatmaps(x: np.ndarray) -> np.ndarray:
    pooled = x[:, 0].reshape(len(x), 4, 4, 4, 4).mean(axis=(2, 4))
    return np.stack([pooled * (k + 1) for k in range(3)], axis=1).astype(np.float32)


@pytest.fixture
def fake_hardware(monkeypatch):
    device = FakeDevice()
    trt = FakeTensorRT(device, PROFILE)
    for module in (trt_runner, trt_export):
        monkeypatch.setattr(module, "import_tensorrt", lambda: trt)
        monkeypatch.setattr(module, "cuda_ops", lambda: device)
    return trt, device


def test_runner_chunks_pads_and_frees_on_fake_hardware(tmp_path, fake_hardware):
    trt, device = fake_hardware
    engine, _ = fake_manifest(tmp_path, DeviceFacts("10.3.0.30", "Fake GPU", "8.7"))
    x = np.random.default_rng(1).normal(size=(9, 1, 16, 16)).astype(np.float64)
    runner = TensorRTRunner(engine)
    assert runner.name == "tensorrt" and not runner.is_active
    with pytest.raises(InactiveRunnerError, match="not active: call activate\\(\\)"):
        runner.infer(x)  # never loads behind the caller's back
    assert device.memory == {} and device.streams == 0
    with runner:
        assert runner.is_active and device.streams == 1
        got = runner.infer(x)
        assert got.dtype == np.float32 and got.shape == (9, 3, 4, 4)
        np.testing.assert_allclose(got, fake_heatmaps(x.astype(np.float32)), rtol=1e-6)
        assert trt.executed == [4, 4, 2]  # max-batch chunks, the last padded up to the minimum
        with pytest.raises(UserError, match="shape \\(N, 1, 16, 16\\)"):
            runner.infer(np.zeros((2, 1, 8, 8), np.float32))
    assert not runner.is_active and device.memory == {} and device.streams == 0
    with pytest.raises(InactiveRunnerError):
        runner.infer(x)
    runner.deactivate()  # idempotent
    runner.activate()
    runner.activate()  # idempotent: one set of buffers
    assert len(device.memory) == 2 and device.streams == 1
    runner.deactivate()
    assert device.memory == {}


def test_runner_refuses_an_engine_built_elsewhere(tmp_path, fake_hardware):
    engine, _ = fake_manifest(tmp_path, DeviceFacts("10.3.0.30", "Orin", "8.7"))
    with pytest.raises(UserError, match="built for Orin.*edgeld export tiny.onnx --to engine"):
        TensorRTRunner(engine).activate()
    assert fake_hardware[1].memory == {}


def test_runner_without_tensorrt_names_the_extra(tmp_path, monkeypatch):
    engine, _ = fake_manifest(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(UserError, match=r"pip install 'edgeld\[trt\]'"):
        TensorRTRunner(engine).activate()
    with pytest.raises(UserError, match="engine file not found"):
        TensorRTRunner(tmp_path / "missing.engine").activate()


# ---------------------------------------------------------------- the build steps, on fake TensorRT

def test_build_request_and_onnx_artifact_steps(tmp_path):
    onnx_path = write_onnx(tmp_path, "qdq")
    req = check_build_request(str(onnx_path), str(tmp_path / "t.engine"), [1, 2, 4], "cache")
    assert req.batch == (1, 2, 4) and req.out_path == tmp_path / "t.engine"
    assert req.timing_cache.name == "cache" and req.legacy_calibration is None
    manifest, io, graph = read_onnx_artifact(onnx_path)
    assert io == IO and manifest.artifact.precision == "int8" and graph.precision == "int8"


def test_build_engine_on_fake_tensorrt_then_run_it(tmp_path, fake_hardware):
    trt, device = fake_hardware
    onnx_path = write_onnx(tmp_path, "fp32")
    engine, cache = tmp_path / "tiny.engine", tmp_path / "timing.cache"
    manifest = build_engine(onnx_path, engine, "fp32", batch_sizes=(2, 4, 4), timing_cache=cache,
                            workspace_mb=64)
    assert engine.read_bytes() == FAKE_ENGINE and cache.read_bytes() == FAKE_CACHE
    assert Manifest.read(engine) == manifest
    builder = trt.builders[-1]
    assert builder.network_flags == 1 << FakeTensorRT.NetworkDefinitionCreationFlag.STRONGLY_TYPED
    config = builder.config
    assert (config.flags, config.cleared) == (set(), {"TF32"})
    assert config.pools == {"WORKSPACE": 64 << 20} and config.profiling_verbosity == "DETAILED"
    assert [p.shape for p in config.profiles] == [
        ("image", (2, 1, 16, 16), (4, 1, 16, 16), (4, 1, 16, 16))]
    rt = manifest.section("tensorrt")
    assert (rt["version"], rt["gpu"], rt["strongly_typed"], rt["flags_cleared"]) == (
        "10.3.0.30", "Fake GPU", True, ["TF32"])
    assert rt["timing_cache"] == str(cache) and rt["workspace_mb"] == 64
    # the inspector ran with a context at the opt shape, so tensor types resolved
    assert manifest.sections["layers"] == [{"name": "conv", "type": "CaskConvolution", "precision": "fp32"}]
    x = np.random.default_rng(5).normal(size=(3, 1, 16, 16)).astype(np.float32)
    with TensorRTRunner(engine) as runner:  # the engine it wrote loads on the same (fake) machine
        np.testing.assert_allclose(runner.infer(x), fake_heatmaps(x), rtol=1e-6)
    build_engine(onnx_path, tmp_path / "again.engine", "fp32", (2, 4, 4), timing_cache=cache)
    assert trt.builders[-1].config.timing_cache.data == FAKE_CACHE  # started from the saved cache


@pytest.mark.parametrize("kind,precision,strong,flags", [
    ("fp32", "fp16", False, {"FP16"}), ("fp16", "fp16", True, set()), ("qdq", "int8", False, {"INT8"})])
def test_fake_build_sets_the_plans_typing_and_flags(tmp_path, fake_hardware, kind, precision,
                                                    strong, flags):
    trt, _ = fake_hardware
    manifest = build_engine(write_onnx(tmp_path, kind), tmp_path / "t.engine", precision, (1, 1, 4))
    builder = trt.builders[-1]
    assert builder.network_flags == (1 << 1 if strong else 0)
    assert (builder.config.flags, builder.config.cleared) == (flags, set())
    assert manifest.section("tensorrt")["flags"] == sorted(flags)
    assert manifest.artifact.precision == precision


def test_fake_tensorrt_11_build_passes_no_typing_flag_and_no_tf32(tmp_path, fake_hardware,
                                                                   monkeypatch):
    trt, _ = fake_hardware
    monkeypatch.setattr(trt, "__version__", "11.0.0", raising=False)
    monkeypatch.setattr(trt, "BuilderFlag", types.SimpleNamespace(FP16="FP16", INT8="INT8"),
                        raising=False)  # TensorRT 11's docs do not list TF32
    manifest = build_engine(write_onnx(tmp_path, "fp32"), tmp_path / "t.engine", "fp32", (1, 1, 4))
    builder = trt.builders[-1]
    assert builder.network_flags == 0 and builder.config.cleared == set()  # always strongly typed
    assert manifest.section("tensorrt")["version"] == "11.0.0" and manifest.section("tensorrt")["strongly_typed"]


def test_network_step_refuses_unparsable_and_fixed_batch_onnx(tmp_path, fake_hardware):
    trt, _ = fake_hardware
    logger, plan = trt.Logger(trt.Logger.WARNING), plan_build("10.3.0.30", "fp32", F, F, F)
    parsed = network_from_onnx(trt, logger, write_onnx(tmp_path), plan, IO, (1, 1, 8))
    assert parsed.network.get_input(0).shape == (-1, 1, 16, 16) and parsed.parser is not None
    with pytest.raises(UserError, match="fixed batch of 1"):
        network_from_onnx(trt, logger, write_onnx(tmp_path, batch=1), plan, IO, (1, 1, 8))
    trt.parse_errors = ["In node 0 (Conv): unsupported"]
    with pytest.raises(UserError, match="cannot parse tiny_fp32.onnx: In node 0 \\(Conv\\)"):
        network_from_onnx(trt, logger, write_onnx(tmp_path), plan, IO, (1, 1, 8))


def test_config_step_refuses_a_timing_cache_from_elsewhere(tmp_path, fake_hardware):
    trt, _ = fake_hardware
    cache = tmp_path / "other.cache"
    cache.write_bytes(b"a cache made by another TensorRT")
    builder = trt.Builder(None)
    plan = plan_build("10.3.0.30", "fp32", F, F, F)
    with pytest.raises(UserError, match="timing cache .*other.cache was made by another TensorRT"):
        builder_config(trt, builder, plan, profile_shapes(IO, (1, 1, 4)), 16, cache)
    config = builder_config(trt, builder, plan, profile_shapes(IO, (1, 1, 4)), 16, None)
    assert config.timing_cache.data == b""  # no file: an empty cache


def test_engine_step_refuses_a_failed_build_and_frees_the_calibrator(fake_hardware):
    trt, _ = fake_hardware
    freed = []
    calibrator = types.SimpleNamespace(free=lambda: freed.append(True),
                                       read_calibration_cache=lambda: b"cached")
    builder = trt.Builder(None)
    config = builder.create_builder_config()
    config.int8_calibrator = calibrator
    parsed = trt_export.ParsedNetwork(builder, builder.create_network(0), None)
    assert engine_bytes(parsed, config, "m.onnx", calibrator) == FAKE_ENGINE and freed == [True]
    trt.build_fails = True
    with pytest.raises(UserError, match="could not build an engine from m.onnx"):
        engine_bytes(parsed, config, "m.onnx", calibrator)
    assert freed == [True, True]


def write_calibration(folder, tensors: np.ndarray):
    """A calibration folder as `edgeld calibrate` leaves it, for IO's preprocessing."""
    from edgeld.export.calibration import CALIBRATION_FORMAT, _write_tensors

    _write_tensors(folder, tensors, {
        "format": CALIBRATION_FORMAT, "name": folder.name,
        "preprocess": {"input_height": IO.input_height, "input_width": IO.input_width,
                       "mean": IO.mean, "std": IO.std, "reducing_gap": IO.input.reducing_gap},
        "images": []})
    return folder


def test_legacy_calibration_on_fake_tensorrt_10(tmp_path, fake_hardware):
    trt, device = fake_hardware
    tensors = np.random.default_rng(6).normal(size=(5, 1, 16, 16)).astype(np.float32)
    calibration = write_calibration(tmp_path / "calib", tensors)
    engine = tmp_path / "t.engine"
    manifest = build_engine(write_onnx(tmp_path), engine, "int8", (1, 2, 4),
                            legacy_int8_calibration=calibration)
    builder = trt.builders[-1]
    assert builder.config.flags == {"INT8"}
    assert builder.config.calibration_profile.shape == ("image", *[(2, 1, 16, 16)] * 3)
    fed = [b.view(np.float32).reshape(2, 1, 16, 16) for b in builder.calibrated]
    np.testing.assert_array_equal(np.concatenate(fed), tensors[:4])  # whole batches only
    info = manifest.section("tensorrt")["int8_calibration"]
    assert (info["images"], info["batch"]) == (4, 2)
    cache = tmp_path / info["cache"]
    assert cache.read_bytes() == b"fake calibration table" and info["cache_key"][:16] in cache.name
    assert device.memory == {} and device.streams == 0  # the calibrator freed its buffer
    build_engine(write_onnx(tmp_path), engine, "int8", (1, 2, 4), legacy_int8_calibration=calibration)
    assert trt.builders[-1].calibrated == []  # the keyed cache was reused


# ---------------------------------------------------------------- real TensorRT on a real GPU

def _trt_major() -> int:
    import tensorrt

    return parse_trt_version(tensorrt.__version__)[0]


@needs_tensorrt
def test_fp32_engine_matches_onnxruntime(tmp_path):
    onnx_path = write_onnx(tmp_path, "fp32")
    engine, cache = tmp_path / "tiny.engine", tmp_path / "timing.cache"
    manifest = build_engine(onnx_path, engine, "fp32", batch_sizes=(1, 2, 4), timing_cache=cache)
    assert Manifest.read(engine) == manifest and cache.is_file()
    assert manifest.artifact.kind == "engine" and manifest.section("tensorrt")["strongly_typed"]
    assert manifest.section("tensorrt")["profile"]["max"] == [4, 1, 16, 16]
    assert manifest.sections["layers"], "the inspector should list layers at DETAILED verbosity"
    x = np.random.default_rng(2).normal(size=(6, 1, 16, 16)).astype(np.float32)  # two chunks
    got = infer_once(engine, x)
    np.testing.assert_allclose(got, reference_logits(onnx_path, x), atol=1e-4, rtol=1e-4)
    # a rebuild reuses the timing cache it wrote
    rebuilt = build_engine(onnx_path, tmp_path / "again.engine", "fp32", (1, 2, 4), timing_cache=cache)
    assert rebuilt.section("tensorrt")["timing_cache"] == str(cache)


@needs_tensorrt
@pytest.mark.parametrize("kind", ["fp16", "fp32"])
def test_fp16_engine_matches_onnxruntime(tmp_path, kind):
    if kind == "fp32" and _trt_major() >= 11:
        pytest.skip("TensorRT 11 has no FP16 builder flag; FP16 comes from an FP16 ONNX")
    onnx_path = write_onnx(tmp_path, kind)
    engine = tmp_path / f"tiny_{kind}.engine"
    manifest = build_engine(onnx_path, engine, "fp16", batch_sizes=(1, 1, 4))
    assert manifest.artifact.precision == "fp16"
    assert manifest.section("tensorrt")["flags"] == (["FP16"] if kind == "fp32" else [])
    x = np.random.default_rng(3).normal(size=(3, 1, 16, 16)).astype(np.float32)
    got = infer_once(engine, x)
    np.testing.assert_allclose(got, reference_logits(onnx_path, x), atol=2e-2, rtol=1e-2)


@needs_tensorrt
def test_int8_qdq_engine_matches_onnxruntime(tmp_path):
    onnx_path = write_onnx(tmp_path, "qdq")
    engine = tmp_path / "tiny_int8.engine"
    manifest = build_engine(onnx_path, engine, "int8", batch_sizes=(1, 1, 4))
    assert manifest.section("tensorrt")["flags"] == ([] if _trt_major() >= 11 else ["INT8"])
    x = np.random.default_rng(4).normal(size=(2, 1, 16, 16)).astype(np.float32)
    got = infer_once(engine, x)
    # both run the same INT8 Q/DQ graph; only float summation order differs
    np.testing.assert_allclose(got, reference_logits(onnx_path, x), atol=2e-2, rtol=1e-2)


@needs_tensorrt
def test_int8_from_a_plain_onnx_is_refused_on_real_tensorrt(tmp_path):
    with pytest.raises(UserError, match="--to int8"):
        build_engine(write_onnx(tmp_path, "fp32"), tmp_path / "b.engine", "int8")
    assert not (tmp_path / "b.engine").exists()


@needs_tensorrt
def test_real_engine_with_another_gpu_in_its_manifest_is_refused(tmp_path):
    onnx_path = write_onnx(tmp_path, "fp32")
    engine = tmp_path / "tiny.engine"
    manifest = build_engine(onnx_path, engine, "fp32", batch_sizes=(1, 1, 2))
    manifest.section("tensorrt")["gpu"] = "Some Other GPU"
    manifest.write(engine)
    with pytest.raises(UserError, match="engines only run where they were built"):
        TensorRTRunner(engine).activate()
