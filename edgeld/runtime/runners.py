"""Backends that turn a preprocessed batch (N, 1, H, W) into heatmap logits (N, K, h, w).

Runners follow Polygraphy's shape: construct cheaply, `activate()` to load, `infer()`,
`deactivate()` to release; `with runner:` does the activate/deactivate pair. `infer()` on an
inactive runner raises InactiveRunnerError rather than loading behind the caller's back, so
device memory and sessions live exactly as long as the caller says.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError


class InactiveRunnerError(RuntimeError):
    """`infer()` on a runner that was never activated or was deactivated: a programming error."""


class Runner(Protocol):
    name: str

    def activate(self) -> None: ...
    def infer(self, batch: np.ndarray) -> np.ndarray: ...
    def deactivate(self) -> None: ...
    def __enter__(self) -> "Runner": ...
    def __exit__(self, exc_type, exc, tb) -> None: ...


class RunnerBase:
    """The lifecycle every runner shares: `is_active`, the context manager and the infer guard.

    Subclasses implement `activate` and `deactivate` (both idempotent) and `is_active`.
    """

    name: str

    @property
    def is_active(self) -> bool:
        raise NotImplementedError

    def activate(self) -> None:
        raise NotImplementedError

    def deactivate(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.activate()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.deactivate()

    def require_active(self) -> None:
        """Raise InactiveRunnerError unless `activate()` has run (and `deactivate()` has not)."""
        if not self.is_active:
            raise InactiveRunnerError(
                f"the {self.name} runner is not active: call activate() before infer() "
                "(or use `with runner: ...`), and do not infer after deactivate()")


class OnnxRuntimeRunner(RunnerBase):
    """ONNX Runtime on the best provider available (TensorRT, CUDA, then CPU) unless told."""

    PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int = 0,
                 io: ModelIO | None = None):
        self.path = Path(path)
        self.providers = providers
        self.threads = threads
        self.io = io  # when given, activate() checks the graph's signature against it
        self.session = None
        self.name = "onnxruntime"

    @property
    def is_active(self) -> bool:
        return self.session is not None

    def activate(self) -> None:
        """Load the ONNX into an InferenceSession (a no-op when already active)."""
        if self.session is not None:
            return
        import onnxruntime as ort

        available = ort.get_available_providers()
        providers = self.providers or [p for p in self.PREFERRED if p in available]
        missing = [p for p in providers if p not in available]
        if missing:
            raise UserError(f"ONNX Runtime here lacks {missing} (has {available})")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = self.threads
        # idle worker threads would spin for the next run and steal the cores from the host
        # application and from the other stages of a cascade (measured: 38 -> 30 ms end to end)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.settings = {"graph_optimization": "all", "intra_op_threads": self.threads or "default",
                         "allow_spinning": False, "execution_mode": "sequential",
                         "cpu_mem_arena": options.enable_cpu_mem_arena}
        try:
            session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise UserError(f"ONNX Runtime cannot load {self.path}: {str(exc).splitlines()[0]}") from exc
        if self.io is not None:
            check_signature(session, self.io, self.path)
        # active only once the graph passed its checks
        self.settings["providers"] = session.get_providers()
        self.session, self.input_name = session, session.get_inputs()[0].name
        self.name = f"onnxruntime-{session.get_providers()[0].replace('ExecutionProvider', '').lower()}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) preprocessed images -> (N, K, h, w) float32 heatmap logits."""
        self.require_active()
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]

    def deactivate(self) -> None:
        """Drop the session (a no-op when inactive)."""
        self.session = None


def check_signature(session, io: ModelIO, path: Path) -> None:
    """Refuse a graph that is not the model its manifest describes: one float input
    (N, 1, H, W) and one output (N, K, H / stride, W / stride). Another model's ONNX beside this
    manifest would otherwise fail mid-inference or, worse, decode into wrong landmarks."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    h, w, k, s = io.input_height, io.input_width, len(io.landmarks), io.heatmap_stride
    want = {"input": (inputs, [1, h, w]), "output": (outputs, [k, h // s, w // s])}
    for what, (tensors, dims) in want.items():
        shape = list(tensors[0].shape) if len(tensors) == 1 else None
        # a symbolic dimension (a name, or unknown) matches anything; the batch one is not checked
        ok = (shape is not None and len(shape) == 4 and tensors[0].type == "tensor(float)"
              and all(not isinstance(g, int) or g == e for g, e in zip(shape[1:], dims)))
        if not ok:
            found = ", ".join(f"{t.name} {t.type} {t.shape}" for t in tensors)
            raise UserError(f"{path} is not the model its manifest describes: expected one float32 "
                            f"{what} (N, {', '.join(map(str, dims))}), found {len(tensors)} {what}s "
                            f"({found}); re-export the model")
