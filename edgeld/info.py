"""`edgeld info` and `edgeld doctor`: what a model is, and what this machine can run. Torch-free."""
from __future__ import annotations

import importlib.util
from typing import Any

from edgeld.errors import UserError
from edgeld.model_ref import ModelArg, checkpoint_metadata, resolve_model
from edgeld.runtime.manifest import sha256_file

__all__ = ["backend_report", "checkpoint_metadata", "model_info"]


def model_info(model: ModelArg) -> dict[str, Any]:
    """The `info --json` record of a MODEL argument."""
    ref = resolve_model(model)
    meta, path = ref.metadata, ref.path
    if ref.is_checkpoint and "io" not in meta:
        raise UserError(f"{path} is not an edgeld checkpoint")
    io = meta["io"]
    if ref.is_artifact:
        source = meta.get("source", {})
        params, macs = source.get("params"), source.get("macs")
        precision = meta["artifact"].get("precision", "fp32")
    else:
        params, macs, precision = meta.get("params"), meta.get("macs"), "fp32"
    patch_size = io.get("patch_size", 0)
    return {
        "name": ref.name,
        "kind": ref.kind,
        "file": str(path),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "params": params,
        "macs": macs,
        "input_size": [io["input_height"], io["input_width"]],
        "landmarks": list(io["landmarks"]),
        "precision": precision,
        "io": io,
        # a refiner runs once per landmark patch: its MACs per image are K times its MACs
        "role": "refiner" if patch_size else "detector",
        "macs_per_image": macs * len(io["landmarks"]) if (macs and patch_size) else macs,
    }


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def backend_report() -> list[str]:
    """Human-readable lines: each backend, whether it is usable here, and how to get it if not."""
    from edgeld.bench.device import cpu_model, jetson_release, library_versions, nvidia_gpus

    versions = library_versions()
    lines = [f"CPU: {cpu_model()}"]
    import onnxruntime as ort

    lines.append(f"ONNX Runtime {ort.__version__}: providers {', '.join(ort.get_available_providers())}")
    if _installed("torch"):
        import torch

        cuda = torch.cuda.is_available()
        lines.append(f"torch {torch.__version__}: CUDA {'available' if cuda else 'not available'}")
    else:
        lines.append("torch: missing (training, export and the torch backend): pip install 'edgeld[torch]'")
    gpus = nvidia_gpus()
    lines.append("NVIDIA GPU: " + ("; ".join(f"{g['name']} (driver {g['driver']}, "
                                             f"compute {g['compute_capability']})" for g in gpus)
                                   if gpus else "none found (no nvidia-smi or no device)"))
    jetson = jetson_release()
    lines.append(f"Jetson: {jetson}" if jetson else "Jetson: not a Jetson (no /etc/nv_tegra_release)")
    lines.append(f"TensorRT: {versions['tensorrt']}" if _installed("tensorrt")
                 else "TensorRT: missing (engines): pip install 'edgeld[trt]' on a machine with an NVIDIA GPU")
    lines.append("cuda-python: " + (versions["cuda-python"] or "installed") if _installed("cuda")
                 else "cuda-python: missing (TensorRT buffers): pip install 'edgeld[trt]'")
    lines.append("pydicom: " + (versions["pydicom"] or "installed") if _installed("pydicom")
                 else "pydicom: missing (DICOM input): pip install 'edgeld[dicom]'")
    return lines
