"""`edgeld export --to int8|fp16`: lower an FP32 model, gate its accuracy, write it with a manifest."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from edgeld import __version__
from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError
from edgeld.core.files import make_parent_folder, sha256_file
from edgeld.core.manifest import ArtifactEntry, Manifest
from edgeld.export.gate import Gate, displacement_px
from edgeld.export.precision import (convert_fp16, describe_int8_weights,
                                     int8_weight_layout, layer_names, layer_sensitivity,
                                     prepare_for_quantization,
                                     quantize_int8, weight_nodes)
from edgeld.model_ref import ModelArg, ModelRef, resolve_model

DEFAULT_MAX_MRE_INCREASE = {"int8": 0.05, "fp16": 0.01}
SENSITIVITY_INPUTS = 8  # calibration images used to rank layers (decoded-landmark displacement)


def resolve_fp32(ref: ModelRef, workdir: Path) -> tuple[Path, Manifest]:
    """An FP32 ONNX for the model: the artifact itself, or a fresh export of a checkpoint."""
    if ref.kind == "onnx":
        manifest = ref.manifest
        if manifest.artifact.precision != "fp32":
            raise UserError(f"{ref.path} is {manifest.artifact.precision}; lower from the FP32 "
                            "ONNX or the checkpoint")
        return ref.path, manifest
    if not ref.is_checkpoint:
        raise UserError(f"export needs a built-in model, a checkpoint or an FP32 .onnx, not {ref}")
    from edgeld.export.onnx import export_onnx

    path = workdir / "fp32.onnx"
    return path, export_onnx(ref, path)


def _gate_limit(precision: str, calibration: str | None, max_mre_increase: float | None) -> float:
    """The accuracy gate's limit in mm, after refusing option combinations that cannot work."""
    if precision == "int8" and not calibration:
        raise UserError("INT8 needs calibration data: --calibration calibration/NAME "
                        "(make one with `edgeld calibrate`); edgeld never invents scales")
    if precision == "fp16" and calibration:
        raise UserError("--calibration applies to --to int8 only")
    limit = DEFAULT_MAX_MRE_INCREASE[precision] if max_mre_increase is None else max_mre_increase
    if limit < 0:
        raise UserError("--max-mre-increase must be >= 0 mm")
    return limit


def export_lowered(model: ModelArg, out: str | Path, precision: str, calibration: str | None = None,
                   target: str = "tensorrt", method: str = "minmax",
                   max_mre_increase: float | None = None, data_dir: str | None = None,
                   split: str | None = None, progress: bool = True,
                   echo: Callable[[str], None] = lambda _m: None,
                   stage1: ModelArg | None = None) -> Manifest:
    """Write an INT8 (Q/DQ) or FP16 ONNX at `out` if it passes the accuracy gate.

    A refiner is gated on the whole cascade: `stage1` (default: the first stage its calibration
    set was cut with, else isbi2015-student) in FP32, then the candidate, against the same
    cascade with the FP32 refiner, on the first stage's own validation images."""
    ref = resolve_model(model)
    out = Path(out)
    if out.suffix != ".onnx":
        raise UserError(f"--out must end in .onnx (got {out})")
    limit = _gate_limit(precision, calibration, max_mre_increase)
    t0 = time.perf_counter()
    make_parent_folder(out)  # fail before the work when a file is in the way
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".edgeld-export-") as tmp:
        work = Path(tmp)
        fp32_path, fp32_manifest = resolve_fp32(ref, work)
        io = fp32_manifest.io
        calib = _calibration_for(io, calibration, progress)
        gate = _load_gate(io, fp32_manifest, calib, data_dir, split, stage1, echo)
        reference = gate.evaluate(fp32_path)
        cascade = f" (the cascade after {gate.stage1_name})" if gate.stage1 else ""
        echo(f"FP32{cascade} on {gate.split}, {len(gate.images)} images: "
             f"MRE {reference['mre_mm']:.3f} mm")

        if precision == "int8":  # node names below are those of the prepared graph
            source = work / "prepared.onnx"
            prepare_for_quantization(fp32_path, source)
        else:
            source = fp32_path

        def lower(path: Path, keep: list[str], only: list[str] | None = None) -> None:
            if precision == "int8":
                quantize_int8(source, path, io.input_name, calib.tensors, target, method,
                              exclude=keep, only=only, cache_dir=work)
            else:
                others = [n for n in weight_nodes(source) if only and n not in only]
                convert_fp16(source, path, keep_fp32=keep + others)

        def rank_layers() -> list[tuple[str, float]]:
            per_image = len(io.landmarks) if io.patch_size else 1  # a refiner: K patches per image
            inputs = (calib.tensors[:SENSITIVITY_INPUTS * per_image] if calib is not None
                      else _gate_inputs(gate))
            return layer_sensitivity(
                weight_nodes(source), lambda node, path: lower(path, [], only=[node]),
                lambda path: displacement_px(fp32_path, path, io, inputs), progress)

        candidate = work / "candidate.onnx"
        kept, ranking, result = _lower_until_gate(candidate, lower, rank_layers, gate, reference,
                                                  precision, limit, echo)
        manifest = _manifest(out, candidate, precision, io, fp32_path, fp32_manifest, calib,
                             calibration, target, method, kept, ranking, gate, reference, result,
                             limit, time.perf_counter() - t0)
        # manifest first, artifact last: a kill between the two leaves no artifact at `out`
        manifest.write(out)
        shutil.move(str(candidate), str(out))  # same folder: an atomic rename
    return manifest


def _load_gate(io: ModelIO, fp32_manifest: Manifest, calib, data_dir: str | None,
               split: str | None, stage1: ModelArg | None, echo: Callable[[str], None]) -> Gate:
    """The accuracy gate's images (calibration images left out) and, for a refiner, its first
    stage; its validation images are the first stage's own."""
    validation = fp32_manifest.source.get("validation", {})
    annotation = validation.get("reference")  # the model's own, a refiner's too (not its stage1's)
    first = None
    if io.patch_size:
        first, validation = _gate_stage1(io, calib, stage1, echo)
    elif stage1 is not None:
        raise UserError("--stage1 applies to a refiner only; this model is a first stage")
    gate_root = data_dir or (calib.manifest["dataset"]["root"] if calib else None)
    if gate_root is None:
        raise UserError("the accuracy gate needs data: --data DIR (and --split NAME unless the "
                        "model records its validation images)")
    detector = None
    if first is not None:
        from edgeld.load import open_detector

        detector = open_detector(first)
    gate = Gate.load(io, gate_root, split, validation,
                     [i["sha256"] for i in calib.manifest["images"]] if calib else (), detector,
                     annotation)
    if first is not None:
        gate.stage1_name, gate.stage1_sha256 = first.name, sha256_file(first.path)
    if gate.excluded:
        echo(f"accuracy gate: {len(gate.excluded)} of its images are calibration images and are "
             f"left out; {len(gate.images)} remain")
    return gate


def _gate_stage1(io: ModelIO, calib, stage1: ModelArg | None, echo: Callable[[str], None]
                 ) -> tuple[ModelRef, dict[str, Any]]:
    """A refiner's first stage for the gate, resolved and checked, and its validation images."""
    from edgeld.export.calibration import DEFAULT_STAGE1

    recorded = calib.stage1 if calib is not None else None
    first = resolve_model(stage1 if stage1 is not None else
                          recorded["name"] if recorded else DEFAULT_STAGE1)
    if first.kind == "engine" or first.io.patch_size or \
            tuple(first.io.landmarks) != tuple(io.landmarks):
        raise UserError(f"--stage1 {first} must be a whole-image model (built-in, checkpoint or "
                        ".onnx) for the refiner's landmarks")
    if recorded and stage1 is None and sha256_file(first.path) != recorded["sha256"]:
        echo(f"note: {first} has changed since the calibration set was cut with it; the gate "
             "runs the current one")
    if first.is_checkpoint:
        training = first.metadata.get("training", {})
        validation = {"dataset": training.get("dataset"), "split": "train",
                      "images": training.get("val_images", [])}
    else:
        validation = first.manifest.source.get("validation", {})
    return first, validation


def _calibration_for(io: ModelIO, calibration: str | None, progress: bool):
    """The calibration set (or None), refused when it was preprocessed for another input."""
    from edgeld.export.calibration import load_calibration

    if not calibration:
        return None
    calib = load_calibration(calibration, progress=progress)
    if not calib.matches(io):
        raise UserError(f"{calibration} was preprocessed for another input "
                        f"({calib.manifest['preprocess']}); make a set for this model")
    return calib


def _lower_until_gate(candidate: Path, lower: Callable[[Path, list[str]], None],
                      rank_layers: Callable[[], list[tuple[str, float]]], gate: Gate,
                      reference: dict[str, Any], precision: str, limit: float,
                      echo: Callable[[str], None]):
    """Lower into `candidate`, keeping ever more of the most sensitive layers in float32 (1, 2, 4...
    more each round) until the gate passes; returns (kept, ranking or None, gate result)."""
    kept: list[str] = []
    ranking, step = None, 1
    while True:
        lower(candidate, kept)
        result = gate.evaluate(candidate)
        increase = result["mre_mm"] - reference["mre_mm"]
        echo(f"{precision} with {len(kept)} layer(s) kept in float32: MRE {result['mre_mm']:.3f} mm "
             f"({increase:+.3f} mm, limit {limit} mm)")
        if increase <= limit:
            return kept, ranking, result
        if ranking is None:  # measured only when needed: one lowering per layer
            ranking = rank_layers()
        remaining = [n for n, _ in ranking if n not in kept]
        if not remaining:
            raise UserError(f"{precision} misses the accuracy gate even with every layer kept in "
                            f"float32 (MRE +{increase:.3f} mm > {limit} mm); nothing written")
        kept += remaining[:step]
        step *= 2


def _gate_inputs(gate: Gate):
    """Model inputs to rank layers on without a calibration set: the first gate images, whole or,
    for a refiner, as the patches around the first stage's landmarks."""
    import numpy as np

    from edgeld.core.letterbox import preprocess
    from edgeld.runtime.patches import PatchSpec, patches_at_training_scale

    io, images = gate.io, gate.images[:SENSITIVITY_INPUTS]
    if gate.stage1 is None:
        return np.stack([preprocess(img, io.input_height, io.input_width, io.mean, io.std,
                                    io.input.reducing_gap)[0] for img in images])
    spec = PatchSpec(io.patch_size, io.patch_factor)
    return np.concatenate([patches_at_training_scale(img, gate.stage1.detect(img).landmarks_px,
                                                     spacing, io.film_spacing_mm, spec, io.mean,
                                                     io.std)
                           for img, spacing in zip(images, gate.stated_mm)])


def _manifest(out, candidate, precision, io, fp32_path, fp32_manifest, calib, calibration, target,
              method, kept, ranking, gate, reference, result, limit, seconds) -> Manifest:
    import onnx
    import onnxruntime as ort

    artifact = ArtifactEntry(file=out.name, sha256=sha256_file(candidate),
                             bytes=candidate.stat().st_size, kind="onnx",
                             opset=fp32_manifest.artifact.opset, precision=precision)
    layers = layer_names(fp32_path)
    lowering: dict[str, Any] = {"kept_float32": kept,
                                "kept_float32_layers": [layers.get(n, n) for n in kept]}
    if ranking is not None:
        lowering["sensitivity_px"] = {n: round(v, 4) for n, v in ranking}
        lowering["sensitivity_layers"] = {layers.get(n, n): round(v, 4) for n, v in ranking}
    if precision == "int8":
        weights = int8_weight_layout(candidate)  # read back from the graph as written
        lowering.update({
            "format": "QDQ", "target": target, "calibration_method": method,
            "weights": describe_int8_weights(weights), "int8_weight_layers": weights["layers"],
            "activations": "int8, per-tensor, symmetric (zero point 0)" if target == "tensorrt"
            else "uint8, per-tensor, asymmetric (zero points)",
            "bias": "float32" if target == "tensorrt" else "int32",
            "calibration": {"path": str(calibration), "name": calib.manifest["name"],
                            "count": len(calib.tensors), "images": len(calib.manifest["images"]),
                            "stage1": calib.stage1,
                            "selection": calib.manifest["selection"]["method"],
                            "manifest_sha256": sha256_file(Path(calibration) / "manifest.json")}})
    else:
        lowering.update({"format": "float16 graph, float32 inputs and outputs"})
    gate_record = {"split": gate.split, "n_images": len(gate.images),
                   # images of the split that are also calibration images: left out of the gate
                   "excluded_calibration_images": gate.excluded,
                   "fp32_mre_mm": reference["mre_mm"], "mre_mm": result["mre_mm"],
                   "mre_increase_mm": result["mre_mm"] - reference["mre_mm"],
                   "max_mre_increase_mm": limit,
                   "fp32_sdr_2mm": reference["sdr_2mm"], "sdr_2mm": result["sdr_2mm"]}
    if gate.stage1 is not None:  # a refiner: both figures are of the cascade after this stage
        gate_record["cascade"] = {"stage1": gate.stage1_name, "stage1_sha256": gate.stage1_sha256,
                                  "stage1_precision": "fp32"}
    return Manifest(
        artifact=artifact, io=io,
        source={**fp32_manifest.source, "fp32_onnx_sha256": sha256_file(fp32_path)},
        tools={"edgeld": __version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        sections={"lowering": lowering, "gate": gate_record, "export_seconds": round(seconds, 2)})
