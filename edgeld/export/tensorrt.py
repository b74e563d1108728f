"""ONNX artifact (with its manifest) -> TensorRT engine + engine manifest, built on the target device.

What to ask TensorRT for (strongly or weakly typed network, which builder flags, whether the
legacy calibrator runs) is a pure function of the TensorRT version and of the precision the ONNX
already holds, so it is unit-tested without TensorRT. Written against TensorRT 10/11's documented
Python API; the build itself has not run on hardware here (no GPU, no TensorRT).

TensorRT as it is in 2026 (see DESIGN.md): TensorRT 11 is strongly typed only, precision lives in
the ONNX (FP16 casts, INT8 Q/DQ); TensorRT 10 (JetPack 6 ships 10.3) still has the FP16/INT8
builder flags and, deprecated since 10.1, the implicit INT8 calibrators.
"""
from __future__ import annotations

import hashlib
import json
import platform
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeld import __version__
from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError
from edgeld.core.files import atomic_write_bytes, sha256_file
from edgeld.core.manifest import ArtifactEntry, Manifest
from edgeld.runtime.tensorrt_runner import (DeviceFacts, compute_capability_str, cuda_ops,
                                            engine_compatibility, import_tensorrt, tensor_nbytes)

__all__ = ["BuildPlan", "BuildRequest", "OnnxPrecision", "ParsedNetwork", "add_profile",
           "build_engine", "builder_config", "calibration_cache_key", "check_batch_sizes",
           "check_build_request", "engine_bytes", "engine_compatibility", "engine_manifest",
           "inspect_onnx_precision", "layer_precisions", "network_from_onnx", "parse_trt_version",
           "plan_build", "profile_shapes", "read_onnx_artifact", "save_engine", "save_timing_cache",
           "set_precision_flags"]

PRECISIONS = ("fp32", "fp16", "int8")
MIN_TENSORRT_MAJOR = 10
DEFAULT_BATCH_SIZES = (1, 1, 8)  # min, opt, max: single X-rays are the common case on a device
# tactic scratch memory: plenty for a small CNN at batch 8, and small enough for an 8 GB Orin Nano
# whose GPU shares memory with the CPU
DEFAULT_WORKSPACE_MB = 1024
CALIBRATION_CACHE_SCHEMA = "edgeld-trt-int8-calibration/1"

TO_FP16 = "make an FP16 ONNX first (`edgeld export MODEL --to fp16`) and build from it"
EXPORT_INT8 = "`edgeld export MODEL --to int8 --calibration calibration/NAME`"
TO_INT8 = f"make a Q/DQ ONNX first ({EXPORT_INT8}) and build from it"


# ---------------------------------------------------------------- decisions that need no TensorRT

def parse_trt_version(version: str) -> tuple[int, ...]:
    """'10.3.0.30' -> (10, 3, 0, 30): the leading numeric parts of a TensorRT version."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", str(version))
    if match is None:
        raise ValueError(f"not a TensorRT version: {version!r}")
    return tuple(int(p) for p in match.group(1).split("."))


@dataclass(frozen=True)
class BuildPlan:
    """How to build: network mode, builder flags to set and clear, whether the legacy calibrator runs."""

    trt_version: str
    precision: str
    strongly_typed: bool
    set_flags: tuple[str, ...] = ()  # trt.BuilderFlag member names
    clear_flags: tuple[str, ...] = ()
    legacy_calibrator: bool = False
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("set_flags", "clear_flags", "notes"):
            d[key] = list(d[key])
        return d


def plan_build(trt_version: str, precision: str, onnx_is_qdq: bool, onnx_is_fp16: bool,
               legacy_calibration: bool) -> BuildPlan:
    """Choose the network mode and builder flags, or refuse (UserError) what cannot be built.

    - Every plan that needs no precision flag is strongly typed, so the engine computes in exactly
      the types the ONNX holds (what ONNX Runtime measured); TensorRT 11 knows no other mode.
    - TensorRT 10 only: FP16 from an FP32 ONNX by BuilderFlag.FP16 (weak typing; TensorRT picks
      FP16 kernels layer by layer), INT8 from an FP32 Q/DQ ONNX with BuilderFlag.INT8, and the
      legacy entropy calibrator only when asked for. The INT8 flag for Q/DQ follows the developer
      guide's rule that a Q/DQ network be built with the INT8 flag (TensorRT 8 wording); the 10.x/11
      pages found say only that with strong typing no precision flag is needed, and are silent on
      whether weakly typed Q/DQ networks in 10.x still require it.
    - FP32 clears TF32 (on by default; Polygraphy clears it too unless asked), so an "fp32" engine
      multiplies in FP32.
    - A precision that disagrees with the ONNX is refused, never rewritten.
    """
    if precision not in PRECISIONS:
        raise UserError(f"unknown engine precision '{precision}' (choose from {', '.join(PRECISIONS)})")
    major = parse_trt_version(trt_version)[0]
    if major < MIN_TENSORRT_MAJOR:
        raise UserError(f"TensorRT {trt_version} is too old: edgeld builds engines with TensorRT "
                        f"{MIN_TENSORRT_MAJOR} or newer (JetPack 6 ships 10.3); upgrade TensorRT on "
                        "this machine")
    onnx_kind = "INT8 Q/DQ" if onnx_is_qdq else "FP16" if onnx_is_fp16 else "FP32"
    if legacy_calibration and precision != "int8":
        raise UserError("the legacy INT8 calibrator only applies to int8 engines; drop it or ask for int8")
    if legacy_calibration and major >= 11:
        raise UserError(f"TensorRT {trt_version} removed the implicit INT8 calibrators; {TO_INT8}")
    if precision == "fp32":
        if onnx_is_qdq or onnx_is_fp16:
            raise UserError(f"this ONNX is {onnx_kind}; ask for a {'int8' if onnx_is_qdq else 'fp16'} "
                            "engine, or build an fp32 engine from the FP32 ONNX")
        return BuildPlan(trt_version, precision, True, clear_flags=("TF32",))
    if precision == "fp16":
        if onnx_is_qdq:
            raise UserError("this ONNX is INT8 Q/DQ; ask for an int8 engine, or build fp16 from the "
                            "FP32 or FP16 ONNX")
        if onnx_is_fp16:
            return BuildPlan(trt_version, precision, True)
        if major >= 11:
            raise UserError(f"TensorRT {trt_version} takes precision from the ONNX (strongly typed "
                            f"networks only); {TO_FP16}")
        return BuildPlan(trt_version, precision, False, set_flags=("FP16",), notes=(
            "FP16 by builder flag: TensorRT chose FP16 layer by layer; TensorRT 11 removed this "
            "path, an FP16 ONNX builds on both",))
    # int8
    if legacy_calibration:
        if onnx_is_qdq:
            raise UserError("this ONNX already holds Q/DQ scales; build it without the legacy "
                            "calibrator")
        if onnx_is_fp16:
            raise UserError("the legacy calibrator needs the FP32 ONNX, not an FP16 one")
        return BuildPlan(trt_version, precision, False, set_flags=("INT8",), legacy_calibrator=True,
                         notes=("implicit INT8 calibration (IInt8EntropyCalibrator2), deprecated "
                                "since TensorRT 10.1 and removed in 11: prefer a Q/DQ ONNX",))
    if not onnx_is_qdq:
        extra = "" if major >= 11 else " (or use the legacy calibrator on TensorRT 10)"
        raise UserError(f"an int8 engine needs INT8 precision in the ONNX, and this one is "
                        f"{onnx_kind}: {TO_INT8}{extra}")
    if onnx_is_fp16 or major >= 11:
        # FP16 tensors besides Q/DQ would need the FP16 flag too under weak typing, which would
        # also let TensorRT move the FP32 parts to FP16; strong typing keeps the ONNX's types
        return BuildPlan(trt_version, precision, True)
    return BuildPlan(trt_version, precision, False, set_flags=("INT8",))


def calibration_cache_key(onnx_sha256: str, calibration_manifest_sha256: str, trt_version: str,
                          gpu_name: str, compute_capability: str | Sequence[int]) -> str:
    """A stable hex key for a legacy INT8 calibration cache: model, data, TensorRT version, device.

    Scales from another model, another calibration set, another TensorRT or another GPU must never
    be reused, so each of them is part of the key.
    """
    payload = {"schema": CALIBRATION_CACHE_SCHEMA, "onnx_sha256": onnx_sha256.lower(),
               "calibration_manifest_sha256": calibration_manifest_sha256.lower(),
               "tensorrt": str(trt_version).strip(), "gpu": gpu_name.strip(),
               "compute_capability": compute_capability_str(compute_capability)}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def check_batch_sizes(batch_sizes: Sequence[int]) -> tuple[int, int, int]:
    """(min, opt, max) batch of the optimization profile: three integers, 1 <= min <= opt <= max."""
    try:
        lo, opt, hi = (int(b) for b in batch_sizes)
    except (TypeError, ValueError):
        raise UserError(f"batch sizes must be three integers (min, opt, max); got {batch_sizes!r}") from None
    if not 1 <= lo <= opt <= hi:
        raise UserError(f"batch sizes must satisfy 1 <= min <= opt <= max; got ({lo}, {opt}, {hi})")
    return lo, opt, hi


def profile_shapes(io: ModelIO, batch_sizes: Sequence[int]) -> dict[str, Any]:
    """The input's optimization profile as the manifest records it (shapes N, 1, H, W)."""
    lo, opt, hi = check_batch_sizes(batch_sizes)
    hw = [1, io.input_height, io.input_width]
    return {"input": io.input_name, "min": [lo, *hw], "opt": [opt, *hw], "max": [hi, *hw]}


def check_network_input(name: str, shape: Sequence[int], io: ModelIO,
                        batch_sizes: Sequence[int]) -> None:
    """The parsed network's input must be the manifest's, with a batch the profile can vary."""
    if name != io.input_name:
        raise UserError(f"the ONNX's input is '{name}' but its manifest says '{io.input_name}'; "
                        "re-export the model")
    expected = (1, io.input_height, io.input_width)
    if len(shape) != 4 or tuple(shape[1:]) != expected:
        dims = ", ".join(map(str, expected))
        raise UserError(f"the ONNX's input has shape {tuple(shape)}, not (N, {dims}) as its manifest "
                        "says; re-export the model")
    fixed = int(shape[0])
    if fixed >= 0 and any(b != fixed for b in check_batch_sizes(batch_sizes)):
        raise UserError(f"this ONNX has a fixed batch of {fixed}; use batch sizes "
                        f"({fixed}, {fixed}, {fixed}) or re-export it with a dynamic batch")


@dataclass(frozen=True)
class OnnxPrecision:
    """What precision an ONNX graph holds, and why TensorRT would reject its Q/DQ nodes."""

    qdq: bool
    fp16: bool
    qdq_problems: tuple[str, ...] = ()

    @property
    def precision(self) -> str:
        return "int8" if self.qdq else "fp16" if self.fp16 else "fp32"


def inspect_onnx_precision(model) -> OnnxPrecision:
    """Read precision from the graph itself: Q/DQ nodes, FP16 casts, initializers or tensors.

    TensorRT's explicit quantization takes INT8 Q/DQ only (symmetric, zero point 0); other zero
    points are listed in `qdq_problems`. Subgraphs (If/Loop bodies) are not inspected.
    """
    from onnx import TensorProto, numpy_helper

    fp16 = TensorProto.FLOAT16
    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = attr.t
    is_fp16 = any(t.data_type == fp16 for t in constants.values())
    is_fp16 |= any(v.type.tensor_type.elem_type == fp16
                   for v in [*graph.input, *graph.output, *graph.value_info])
    is_qdq, problems = False, []
    for node in graph.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == fp16 for a in node.attribute):
            is_fp16 = True
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        is_qdq = True
        zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        label = node.name or node.op_type
        if zero is None:
            continue
        if zero.data_type != TensorProto.INT8:
            problems.append(f"{label}: zero point is {TensorProto.DataType.Name(zero.data_type)}, not INT8")
        elif np.any(numpy_helper.to_array(zero) != 0):
            problems.append(f"{label}: non-zero zero point (TensorRT needs symmetric quantization)")
    return OnnxPrecision(is_qdq, is_fp16, tuple(problems))


def layer_precisions(inspector_json: str) -> list[dict[str, Any]] | None:
    """Per-layer precision from IEngineInspector's JSON (built with ProfilingVerbosity.DETAILED).

    TensorRT 10 names each tensor's type in "Format/Datatype" ("Row major linear FP16 format");
    TensorRT 11 split that into "Format" and "DataType". A layer's precision is that of its
    outputs. None when the engine holds layer names only.
    """
    try:
        layers = json.loads(inspector_json).get("Layers", [])
    except (ValueError, AttributeError):
        return None
    if not layers or not all(isinstance(layer, dict) for layer in layers):
        return None
    result = []
    for layer in layers:
        tensors = layer.get("Outputs") or layer.get("Inputs") or []
        kinds = {_tensor_precision(t) for t in tensors if isinstance(t, dict)} - {None}
        result.append({"name": layer.get("Name"), "type": layer.get("LayerType"),
                       "precision": kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else None)})
    return result


def _tensor_precision(tensor: dict[str, Any]) -> str | None:
    text = str(tensor.get("DataType") or tensor.get("Format/Datatype") or "").lower()
    # most specific first: "bfloat16" also contains "float"
    for needle, name in (("int8", "int8"), ("int4", "int4"), ("fp8", "fp8"), ("bf16", "bf16"),
                         ("bfloat16", "bf16"), ("fp16", "fp16"), ("half", "fp16"), ("fp32", "fp32"),
                         ("float", "fp32"), ("int32", "int32"), ("int64", "int64"), ("bool", "bool")):
        if needle in text:
            return name
    return None


def engine_manifest(*, engine_file: str, engine_sha256: str, engine_bytes: int, onnx_name: str,
                    onnx_manifest: Manifest, plan: BuildPlan, device: DeviceFacts,
                    profile: dict[str, Any], timing_cache: str | None, workspace_mb: int,
                    layers: list[dict[str, Any]] | None, calibration: dict[str, Any] | None,
                    build_seconds: float, tools: dict[str, Any]) -> Manifest:
    """The engine's manifest (`<engine>.json`): what it is, what it was built from, and where it runs."""
    onnx_artifact = onnx_manifest.artifact
    tensorrt = {"version": device.tensorrt, "cuda": device.cuda_runtime,
                "cuda_driver": device.cuda_driver, "gpu": device.gpu,
                "compute_capability": compute_capability_str(device.compute_capability),
                "strongly_typed": plan.strongly_typed, "flags": list(plan.set_flags),
                "flags_cleared": list(plan.clear_flags), "profile": profile,
                "timing_cache": timing_cache, "workspace_mb": workspace_mb,
                "int8_calibration": calibration, "notes": list(plan.notes)}
    return Manifest(
        artifact=ArtifactEntry(file=engine_file, sha256=engine_sha256, bytes=engine_bytes,
                               kind="engine", precision=plan.precision),
        io=onnx_manifest.io,
        source={"onnx": onnx_name, "onnx_sha256": onnx_artifact.sha256,
                "onnx_precision": onnx_artifact.precision, "model": onnx_manifest.source.get("model")},
        tools=tools,
        sections={"tensorrt": tensorrt, "layers": layers, "build_seconds": round(build_seconds, 2)})


# ---------------------------------------------------------------- the build, step by step (needs TensorRT)
# Polygraphy's shape: each step takes what the previous one made, so each can be run (and tested
# with stand-ins for TensorRT) on its own; `build_engine` only strings them together.

@dataclass(frozen=True)
class BuildRequest:
    """The checked arguments of one engine build (paths resolved, batch sizes validated)."""

    onnx_path: Path
    out_path: Path
    batch: tuple[int, int, int]
    timing_cache: Path | None
    legacy_calibration: Path | None
    workspace_mb: int


def check_build_request(onnx_path: str | Path, out_path: str | Path,
                        batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
                        timing_cache: str | Path | None = None,
                        legacy_int8_calibration: str | Path | None = None,
                        workspace_mb: int = DEFAULT_WORKSPACE_MB) -> BuildRequest:
    """Refuse (UserError) arguments no build could use, before anything heavy is imported."""
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    calibration = Path(legacy_int8_calibration) if legacy_int8_calibration is not None else None
    if out_path.suffix != ".engine":
        raise UserError(f"--out for --to engine must end in .engine (got {out_path})")
    if not onnx_path.is_file():
        raise UserError(f"ONNX file not found: {onnx_path}")
    if int(workspace_mb) < 1:
        raise UserError(f"workspace must be at least 1 MB (got {workspace_mb})")
    if calibration is not None and not calibration.is_dir():
        raise UserError(f"calibration set not found: {calibration}")
    return BuildRequest(onnx_path, out_path, check_batch_sizes(batch_sizes),
                        Path(timing_cache) if timing_cache is not None else None, calibration,
                        int(workspace_mb))


def read_onnx_artifact(onnx_path: Path) -> tuple[Manifest, ModelIO, OnnxPrecision]:
    """The ONNX's manifest, its model IO and the precision its graph holds; refuses non-ONNX
    artifacts and Q/DQ that TensorRT cannot take."""
    onnx_manifest = Manifest.read(onnx_path)
    if onnx_manifest.artifact.kind != "onnx":
        raise UserError(f"{onnx_path} is not an ONNX artifact; build engines from an exported .onnx")
    io = onnx_manifest.io

    import onnx

    graph = inspect_onnx_precision(onnx.load(str(onnx_path), load_external_data=False))
    if graph.qdq_problems:
        raise UserError(f"TensorRT takes symmetric INT8 Q/DQ only; {onnx_path.name} has "
                        f"{graph.qdq_problems[0]}: re-export it for TensorRT with {EXPORT_INT8}")
    return onnx_manifest, io, graph


@dataclass(frozen=True)
class ParsedNetwork:
    """A TensorRT network parsed from an ONNX file, with the builder that made it and the parser.

    The network points at weights the parser owns (TensorRT's developer guide: keep the parser
    until the builder has run), so the three travel together, as in Polygraphy's loaders.
    """

    builder: Any
    network: Any
    parser: Any


def network_from_onnx(trt, logger, onnx_path: Path, plan: BuildPlan, io: ModelIO,
                      batch: Sequence[int]) -> ParsedNetwork:
    """Parse the ONNX into a network in the plan's typing mode; check its one input."""
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt, plan))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise UserError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: "
                        f"{errors[0] if errors else 'see its log above'}")
    if network.num_inputs != 1:
        raise UserError(f"{onnx_path.name} has {network.num_inputs} inputs; edgeld models have one")
    net_input = network.get_input(0)
    check_network_input(net_input.name, tuple(net_input.shape), io, batch)
    return ParsedNetwork(builder, network, parser)


def _network_flags(trt, plan: BuildPlan) -> int:
    # TensorRT 11 is always strongly typed and documents STRONGLY_TYPED as ignored, so it is only
    # passed where it changes something
    if plan.strongly_typed and parse_trt_version(plan.trt_version)[0] < 11:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def builder_config(trt, builder, plan: BuildPlan, shapes: dict[str, Any], workspace_mb: int,
                   timing_cache: Path | None):
    """An IBuilderConfig: workspace, detailed profiling, the plan's precision flags, the
    optimization profile `shapes` (see `profile_shapes`) and the timing cache."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # per-layer precision in the inspector
    set_precision_flags(trt, config, plan)
    add_profile(builder, config, shapes)
    _attach_timing_cache(config, timing_cache)
    return config


def set_precision_flags(trt, config, plan: BuildPlan) -> None:
    """Set and clear the builder flags the plan names (none for strongly typed FP16/INT8)."""
    for flag in plan.set_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in plan.clear_flags:
        # TF32 is documented for TensorRT 10; TensorRT 11's docs do not say whether the flag stays
        if hasattr(trt.BuilderFlag, flag):
            config.clear_flag(getattr(trt.BuilderFlag, flag))


def add_profile(builder, config, shapes: dict[str, Any]) -> None:
    """The input's optimization profile (min, opt, max batch) on the builder config."""
    profile = builder.create_optimization_profile()
    profile.set_shape(shapes["input"], shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)


def _attach_timing_cache(config, path: Path | None) -> None:
    """Start from the cache file when there is one; a cache from another TensorRT or GPU is refused."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    # set_timing_cache returns False on a cache header mismatch when ignore_mismatch is False;
    # the docs do not say whether a corrupt file makes create_timing_cache return None or raise
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise UserError(f"timing cache {path} was made by another TensorRT version or GPU, or is "
                        "damaged; delete it or give another path")


def engine_bytes(parsed: ParsedNetwork, config, onnx_name: str, calibrator=None) -> bytes:
    """Build and serialize the engine; the legacy calibrator's device memory is freed either way."""
    try:
        serialized = parsed.builder.build_serialized_network(parsed.network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if serialized is None:
        raise UserError(f"TensorRT could not build an engine from {onnx_name} (see its log "
                        "above); nothing written")
    return bytes(serialized)


def save_timing_cache(config, path: Path | None) -> None:
    """Write the builder's timing cache back, so the next build on this device takes seconds."""
    if path is not None:
        atomic_write_bytes(path, bytes(config.get_timing_cache().serialize()))


def save_engine(out_path: Path, plan_bytes: bytes, manifest: Manifest) -> None:
    """Write the engine and its manifest beside it."""
    # manifest first, engine last: a kill between the two leaves no engine at `out_path`
    manifest.write(out_path)
    atomic_write_bytes(out_path, plan_bytes)


def build_engine(onnx_path: str | Path, out_path: str | Path, precision: str = "fp32",
                 batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
                 timing_cache: str | Path | None = None,
                 legacy_int8_calibration: str | Path | None = None,
                 workspace_mb: int = DEFAULT_WORKSPACE_MB) -> Manifest:
    """Build `out_path` (.engine) from an ONNX with an edgeld manifest; write `<out_path>.json`.

    Run it on the device that will run the engine. `timing_cache` is read if it exists and
    written back after the build (rebuilds then take seconds). `legacy_int8_calibration` is a
    calibration folder (`edgeld calibrate`) for TensorRT 10's implicit calibrator; its cache is
    kept beside the engine, keyed by model, data, TensorRT version and GPU.
    Returns the engine manifest.
    """
    req = check_build_request(onnx_path, out_path, batch_sizes, timing_cache,
                              legacy_int8_calibration, workspace_mb)
    onnx_manifest, io, graph = read_onnx_artifact(req.onnx_path)
    trt = import_tensorrt()
    plan = plan_build(trt.__version__, precision, graph.qdq, graph.fp16,
                      req.legacy_calibration is not None)
    cuda = cuda_ops()
    device = cuda.device_facts(trt.__version__)

    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    parsed = network_from_onnx(trt, logger, req.onnx_path, plan, io, req.batch)
    shapes = profile_shapes(io, req.batch)
    config = builder_config(trt, parsed.builder, plan, shapes, req.workspace_mb, req.timing_cache)
    calibrator, calibration = None, None
    if plan.legacy_calibrator:
        calibrator, calibration = _attach_legacy_calibrator(
            trt, cuda, parsed.builder, config, req.legacy_calibration, io, req.batch,
            onnx_manifest.artifact.sha256, device, req.out_path)
    plan_bytes = engine_bytes(parsed, config, req.onnx_path.name, calibrator)
    seconds = time.perf_counter() - t0
    layers = _inspect_layers(trt, logger, plan_bytes, io.input_name, shapes["opt"])

    save_timing_cache(config, req.timing_cache)
    manifest = engine_manifest(
        engine_file=req.out_path.name, engine_sha256=hashlib.sha256(plan_bytes).hexdigest(),
        engine_bytes=len(plan_bytes),
        onnx_name=req.onnx_path.name, onnx_manifest=onnx_manifest, plan=plan, device=device,
        profile=shapes, timing_cache=str(req.timing_cache) if req.timing_cache is not None else None,
        workspace_mb=req.workspace_mb, layers=layers, calibration=calibration,
        build_seconds=seconds, tools=_tools(trt))
    save_engine(req.out_path, plan_bytes, manifest)
    return manifest


def _inspect_layers(trt, logger, plan_bytes: bytes, input_name: str,
                    opt_shape: Sequence[int]) -> list[dict[str, Any]] | None:
    """Layer precisions from the engine inspector; None where this TensorRT has no inspector."""
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(plan_bytes)
    if engine is None:
        raise RuntimeError("TensorRT could not deserialize the engine it just built")
    try:
        inspector = engine.create_engine_inspector()
        # with a dynamic batch the engine alone reports "N/A due to dynamic shapes" for tensor
        # types; a context with the input shape set resolves them. TensorRT 10 documents the
        # attribute as `context`, TensorRT 11 as `execution_context`.
        context = engine.create_execution_context()
        if context.set_input_shape(input_name, tuple(opt_shape)):
            setattr(inspector, "execution_context" if hasattr(inspector, "execution_context")
                    else "context", context)
        info = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    except AttributeError:
        return None
    return layer_precisions(info)


def _attach_legacy_calibrator(trt, cuda, builder, config, folder: Path, io: ModelIO,
                              batch: tuple[int, int, int], onnx_sha256: str, device: DeviceFacts,
                              out_path: Path):
    """TensorRT 10's implicit INT8 calibration from an `edgeld calibrate` folder, with a keyed cache."""
    from edgeld.export.calibration import load_calibration

    calib = load_calibration(folder, progress=False)
    if not calib.matches(io):
        raise UserError(f"calibration set {folder} was preprocessed for another input size or "
                        "normalization; make one for this model with `edgeld calibrate`")
    tensors = np.ascontiguousarray(calib.tensors, dtype=np.float32)
    lo, opt, hi = batch
    size = max(lo, min(opt, len(tensors)))
    if len(tensors) < size:
        raise UserError(f"calibration set {folder} has {len(tensors)} images, fewer than the "
                        f"engine's minimum batch {lo}")
    key = calibration_cache_key(onnx_sha256, sha256_file(folder / "manifest.json"), device.tensorrt,
                                device.gpu, device.compute_capability)
    cache = out_path.with_name(f"{out_path.name}.int8-{key[:16]}.calibration")
    shape = (size, 1, io.input_height, io.input_width)
    profile = builder.create_optimization_profile()
    profile.set_shape(io.input_name, shape, shape, shape)
    config.set_calibration_profile(profile)
    calibrator = _entropy_calibrator(trt, cuda, tensors, size, cache)
    config.int8_calibrator = calibrator
    used = len(tensors) // size * size
    return calibrator, {"calibration": str(folder), "images": used, "batch": size,
                        "cache_key": key, "cache": cache.name}


def _entropy_calibrator(trt, cuda, tensors: np.ndarray, size: int, cache: Path):
    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        """Feeds whole batches of the calibration set; reuses the keyed cache when it exists."""

        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)  # the docs require instantiating the base
            self.batches = [tensors[i:i + size] for i in range(0, len(tensors) - size + 1, size)]
            self.index = 0
            self.stream = cuda.stream()
            self.device = cuda.malloc(tensor_nbytes(self.batches[0].shape, np.float32))

        def get_batch_size(self) -> int:
            # explicit-batch networks carry N in the calibration profile's shape; TensorRT's docs
            # do not say what to return here, Polygraphy's calibrator returns 1 as well
            return 1

        def get_batch(self, names):
            if self.index >= len(self.batches):
                return None  # documented end-of-data signal
            host = np.ascontiguousarray(self.batches[self.index])
            self.index += 1
            cuda.to_device(self.device, host, self.stream)
            cuda.synchronize(self.stream)
            return [self.device]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data) -> None:
            atomic_write_bytes(cache, bytes(data))

        def free(self) -> None:
            if self.device is not None:
                cuda.free(self.device)
                cuda.destroy_stream(self.stream)
                self.device = None

    return EntropyCalibrator()


def _tools(trt) -> dict[str, Any]:
    """Versions of the tools that made the engine, for its manifest."""
    import importlib.metadata

    import onnx

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {"edgeld": __version__, "tensorrt": trt.__version__, "onnx": onnx.__version__,
            "cuda-python": version("cuda-python"), "pycuda": version("pycuda"),
            "python": platform.python_version()}
