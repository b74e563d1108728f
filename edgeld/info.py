"""`edgeld info` and `edgeld doctor`: what a model is, and what this machine can run. Torch-free."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError
from edgeld.core.files import sha256_file
from edgeld.core.manifest import Manifest
from edgeld.load import checkpoint_path, model_kind


def checkpoint_metadata(path: Path) -> dict[str, Any]:
    """The edgeld description stored in a safetensors checkpoint, read without torch."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            return json.loads((fh.metadata() or {}).get("edgeld", "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable safetensors checkpoint ({exc})") from exc


def model_info(ref: str) -> dict[str, Any]:
    """The `info --json` record of a MODEL argument."""
    kind = model_kind(ref)
    if kind in ("onnx", "engine"):
        path = Path(ref)
        if not path.is_file():
            raise UserError(f"model file not found: {path}")
        manifest = Manifest.read(path)
        io, source = manifest.io, manifest.source
        params, macs = source.get("params"), source.get("macs")
        precision = manifest.artifact.precision
    else:
        path = checkpoint_path(ref)
        meta = checkpoint_metadata(path)
        if "io" not in meta:
            raise UserError(f"{path} is not an edgeld checkpoint")
        try:
            io = ModelIO.from_dict(meta["io"])
        except ValueError as exc:
            raise UserError(f"{path}: {exc}; retrain or re-save it with this edgeld") from exc
        params, macs, precision = meta.get("params"), meta.get("macs"), "fp32"
    return {
        "name": ref,
        "kind": kind,
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
