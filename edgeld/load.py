"""Open a LandmarkDetector for a MODEL (built-in name, checkpoint, .onnx, .engine; see model_ref).

ONNX artifacts never import torch; checkpoints and built-in names do, lazily.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edgeld.core.errors import UserError, missing_extra
from edgeld.model_ref import ModelArg, ModelRef, resolve_model
from edgeld.options import ORT_BACKENDS, TORCH_BACKENDS
from edgeld.runtime import LandmarkDetector


def _backend_for(ref: ModelRef, backend: str | None) -> str | None:
    if backend is None:
        return None
    if ref.kind == "onnx":
        return backend if backend in ORT_BACKENDS else None
    return None if ref.kind == "engine" or backend in ORT_BACKENDS else backend


def open_detector(model: ModelArg, threads: int = 0,
                  refiner: ModelArg | Sequence[ModelArg] | None = None,
                  backend: str | None = None) -> LandmarkDetector:
    """A ready detector for any MODEL argument, optionally followed by refinement stages
    (one name, or several run coarse to fine in the order given).

    `backend` picks how a checkpoint runs (torch-cpu, torch-cuda, torch-cuda-fp16,
    torch-cuda-fp16-graphs; default torch-cpu); an ONNX file runs on ONNX Runtime's best provider,
    or on the one an `onnxruntime-*` backend names (ORT_BACKENDS); an engine runs on TensorRT."""
    ref = resolve_model(model)
    single = isinstance(refiner, (str, Path, ModelRef))
    chain = [resolve_model(r) for r in ([refiner] if single else list(refiner or []))]
    # a refiner takes the backend when it is of the kind that backend runs, else its own default
    second = open_detector(chain[0], threads, chain[1:], _backend_for(chain[0], backend)) if chain else None
    kind = ref.kind
    if ref.is_artifact:
        if backend and (backend.startswith("torch") or kind == "engine"):
            raise UserError(f"{ref} is an {kind} artifact: --backend {backend} runs "
                            f"{'checkpoints and built-in models' if backend.startswith('torch') else '.onnx files'} only")
        providers = list(ORT_BACKENDS[backend]) if backend else None
        if providers and providers[0] != "CPUExecutionProvider":
            import onnxruntime as ort

            if providers[0] not in ort.get_available_providers():
                raise UserError(f"--backend {backend} needs ONNX Runtime's {providers[0]}, which this "
                                f"install lacks (it has {', '.join(ort.get_available_providers())}); "
                                "onnxruntime-gpu on a machine with CUDA provides it")
        return LandmarkDetector(ref.path, threads=threads, refiner=second, providers=providers)
    try:
        import torch
    except ImportError as exc:
        raise missing_extra("torch", "torch") from exc
    if threads:
        torch.set_num_threads(threads)
    from edgeld.models.checkpoint import load_checkpoint
    from edgeld.models.runner import TorchRunner

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
    net, io, _meta = load_checkpoint(ref.path)
    return LandmarkDetector(runner=TorchRunner.for_backend(net, backend), io=io, refiner=second)
