"""Resolve a MODEL argument (built-in name, checkpoint, .onnx, .engine) to a LandmarkDetector.

ONNX artifacts never import torch; checkpoints and built-in names do, lazily.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edgeld.core.errors import UserError, missing_extra
from edgeld.models.registry import BUILTIN_MODELS, builtin_path
from edgeld.runtime import LandmarkDetector


def model_kind(ref: str) -> str:
    """'onnx', 'engine', 'checkpoint' or 'builtin'; a UserError for anything else."""
    suffix = Path(ref).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".engine":
        return "engine"
    if suffix == ".safetensors":
        return "checkpoint"
    if "/" not in ref and "\\" not in ref and not suffix:
        return "builtin"
    raise UserError(f"cannot tell what model '{ref}' is: give a built-in name "
                    f"({', '.join(_builtin_names())}), a .safetensors checkpoint, an .onnx or an .engine")


def _builtin_names() -> list[str]:
    return sorted(BUILTIN_MODELS)


def checkpoint_path(ref: str) -> Path:
    """The safetensors file behind a built-in name or checkpoint path."""
    if model_kind(ref) == "builtin":
        names = _builtin_names()
        if ref not in names:
            raise UserError(f"unknown model '{ref}'; built-in models: {', '.join(names)}")
        path = builtin_path(ref)
        if not path.is_file():
            raise UserError(f"built-in model '{ref}' has no weights in this install ({path})")
        return path
    return Path(ref)


# ONNX Runtime execution providers per backend name, each falling back to the next in order
ORT_BACKENDS = {
    "onnxruntime-cpu": ["CPUExecutionProvider"],
    "onnxruntime-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "onnxruntime-tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def _backend_for(ref: str, backend: str | None) -> str | None:
    if backend is None:
        return None
    kind = model_kind(ref)
    if kind == "onnx":
        return backend if backend in ORT_BACKENDS else None
    return None if kind == "engine" or backend in ORT_BACKENDS else backend


def open_detector(ref: str, threads: int = 0, refiner: str | Sequence[str] | None = None,
                  backend: str | None = None) -> LandmarkDetector:
    """A ready detector for any MODEL argument, optionally followed by refinement stages
    (one name, or several run coarse to fine in the order given).

    `backend` picks how a checkpoint runs (torch-cpu, torch-cuda, torch-cuda-fp16,
    torch-cuda-fp16-graphs; default torch-cpu); an ONNX file runs on ONNX Runtime's best provider,
    or on the one an `onnxruntime-*` backend names (ORT_BACKENDS); an engine runs on TensorRT."""
    chain = [refiner] if isinstance(refiner, str) else list(refiner or [])
    # a refiner takes the backend when it is of the kind that backend runs, else its own default
    second = open_detector(chain[0], threads, chain[1:], _backend_for(chain[0], backend)) if chain else None
    kind = model_kind(ref)
    if kind in ("onnx", "engine"):
        if backend and (backend.startswith("torch") or kind == "engine"):
            raise UserError(f"{ref} is an {kind} artifact: --backend {backend} runs "
                            f"{'checkpoints and built-in models' if backend.startswith('torch') else '.onnx files'} only")
        providers = ORT_BACKENDS[backend] if backend else None
        if providers and providers[0] != "CPUExecutionProvider":
            import onnxruntime as ort

            if providers[0] not in ort.get_available_providers():
                raise UserError(f"--backend {backend} needs ONNX Runtime's {providers[0]}, which this "
                                f"install lacks (it has {', '.join(ort.get_available_providers())}); "
                                "onnxruntime-gpu on a machine with CUDA provides it")
        return LandmarkDetector(ref, threads=threads, refiner=second, providers=providers)
    try:
        import torch
    except ImportError as exc:
        raise missing_extra("torch", "torch") from exc
    if threads:
        torch.set_num_threads(threads)
    from edgeld.models.checkpoint import load_checkpoint
    from edgeld.models.runner import TorchRunner

    from edgeld.models.runner import TORCH_BACKENDS

    if backend in ORT_BACKENDS:
        raise UserError(f"--backend {backend} runs .onnx files; export {ref} first "
                        f"(edgeld export {ref} --to onnx --out PATH.onnx)")
    backend = backend or "torch-cpu"
    if backend not in TORCH_BACKENDS:
        raise UserError(f"--backend {backend} does not run checkpoints; use one of "
                        f"{', '.join(TORCH_BACKENDS)}")
    if backend != "torch-cpu" and not torch.cuda.is_available():
        raise UserError(f"--backend {backend} needs a CUDA GPU, and this torch sees none; "
                        "use --backend torch-cpu")
    model, io, _meta = load_checkpoint(checkpoint_path(ref))
    return LandmarkDetector(runner=TorchRunner.for_backend(model, backend), io=io, refiner=second)
