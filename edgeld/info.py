"""`edgeld info`: what a model is. Torch-free."""
from __future__ import annotations

from typing import Any

from edgeld.core.files import sha256_file
from edgeld.model_ref import ModelArg, checkpoint_metadata, resolve_model

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
        "io": io.to_dict(),
        # a refiner runs once per landmark patch: its MACs per image are K times its MACs
        "role": "refiner" if io.patch_size else "detector",
        "macs_per_image": macs * len(io.landmarks) if (macs and io.patch_size) else macs,
    }
