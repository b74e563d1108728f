"""`edgeld info`: what a model is. Torch-free."""
from __future__ import annotations

from typing import Any

from edgeld.core.files import sha256_file
from edgeld.model_ref import ModelArg, ModelRef, checkpoint_metadata, resolve_model

__all__ = ["checkpoint_metadata", "model_info"]


def model_info(model: ModelArg) -> dict[str, Any]:
    """The `info --json` record of a MODEL argument."""
    ref = resolve_model(model)
    path, io = ref.path, ref.io
    if ref.is_artifact:
        source = ref.manifest.source
        params, macs = source.get("params"), source.get("macs")
        precision = ref.manifest.artifact.precision
    else:
        params, macs, precision = ref.metadata.get("params"), ref.metadata.get("macs"), "fp32"
    return {
        **_provenance(ref),
        "name": ref.name,
        "kind": ref.kind,
        "file": str(path),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "params": params,
        "macs": macs,
        "input_size": [io.input_height, io.input_width],
        "landmarks": list(io.landmarks),
        "precision": precision,
        # how heatmap peaks are refined (the contract's softargmax_radius; `edgeld decode fit`)
        "decoding": (f"local soft-argmax, radius {io.heatmap.softargmax_radius} cells"
                     if io.heatmap.softargmax_radius else "parabola vertex"),
        "io": io.to_dict(),
        # a refiner runs once per landmark patch: its MACs per image are K times its MACs
        "role": "refiner" if io.patch_size else "detector",
        "macs_per_image": macs * len(io.landmarks) if (macs and io.patch_size) else macs,
    }


def _provenance(ref: ModelRef) -> dict[str, Any]:
    """Where the weights came from, as far as the file records it: storage precision, the
    training recipe (role, distillation, data, epochs, seed), the validation images' best figures,
    and the hashes that tie an artifact to its checkpoint."""
    if ref.is_artifact:
        source = ref.manifest.source
        return {"provenance": {"exported_from": source.get("model"),
                               "checkpoint_sha256": source.get("checkpoint_sha256"),
                               "validation": source.get("validation")}}
    meta = ref.metadata
    training = meta.get("training", {})
    train = training.get("train", {}) if isinstance(training.get("train"), dict) else {}
    best = training.get("best", {})
    return {"storage_dtype": meta.get("storage_dtype", "float32"),
            "provenance": {"role": training.get("role"), "kd": training.get("kd"),
                           "teacher": training.get("teacher"),
                           "teacher_sha256": training.get("teacher_sha256"),
                           "dataset": training.get("dataset"), "reference": training.get("reference"),
                           "epochs": train.get("epochs"), "seed": train.get("seed"),
                           "device": training.get("device"), "edgeld": training.get("edgeld"),
                           "validation_images": len(training.get("val_images", [])),
                           "best_validation": best,
                           "orientation_reference": (meta.get("io", {}).get("orientation") or {}
                                                     ).get("fitted_on")}}
