"""The torch backend as a runtime Runner, so torch models share the detector's pre/post-processing.

On CUDA it also runs in FP16 and replays CUDA graphs (one per batch shape), and can time the device
work with CUDA events apart from the host<->device copies, which is what a GPU benchmark reports.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeld.options import TORCH_BACKENDS
from edgeld.runtime.runners import RunnerBase


class TorchRunner(RunnerBase):
    """Runs a torch model in inference mode on the CPU or a CUDA GPU.

    `activate()` puts the model in eval mode on its device and precision; `deactivate()` drops the
    captured CUDA graphs (and their static buffers). The model object stays the caller's.
    """

    def __init__(self, model: nn.Module, device: str = "cpu", precision: str = "fp32",
                 cuda_graphs: bool = False):
        self.device = torch.device(device)
        if self.device.type != "cuda" and (precision != "fp32" or cuda_graphs):
            raise ValueError("FP16 and CUDA graphs need a CUDA device")
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16}[precision]
        self.model = model
        self.precision, self.cuda_graphs = precision, cuda_graphs
        self.name = f"torch-{self.device.type}" + ("-graphs" if cuda_graphs else "")
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self._active = False

    @classmethod
    def for_backend(cls, model: nn.Module, backend: str) -> "TorchRunner":
        """A runner for one of TORCH_BACKENDS."""
        if backend not in TORCH_BACKENDS:
            raise ValueError(f"unknown torch backend {backend!r}")
        if backend == "torch-cpu":
            return cls(model)
        return cls(model, "cuda", "fp16" if "fp16" in backend else "fp32", backend.endswith("graphs"))

    @property
    def is_active(self) -> bool:
        return self._active

    def activate(self) -> None:
        """Eval mode, on this runner's device and precision (idempotent)."""
        self.model = self.model.eval().to(self.device, self.dtype)
        self._active = True

    def deactivate(self) -> None:
        """Drop the CUDA graphs and their static buffers (idempotent)."""
        self._graphs.clear()
        self._active = False

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) preprocessed images -> (N, K, h, w) float32 heatmap logits."""
        self.require_active()
        x = torch.from_numpy(np.ascontiguousarray(batch, np.float32))
        with torch.inference_mode():
            out = self.run_on_device(x.to(self.device))
        return out.float().cpu().numpy()

    def run_on_device(self, x: torch.Tensor) -> torch.Tensor:
        """The network on a tensor already on this runner's device (float32 in)."""
        self.require_active()
        with torch.inference_mode():
            if not self.cuda_graphs:
                return self.model(x.to(self.dtype))
            graph, static_in, static_out = self._graph_for(tuple(x.shape))
            static_in.copy_(x)
            graph.replay()
            return static_out

    def _graph_for(self, shape: tuple[int, ...]):
        if shape not in self._graphs:
            static_in = torch.zeros(shape, device=self.device, dtype=self.dtype)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up on a side stream before capture (PyTorch docs)
                for _ in range(3):
                    self.model(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.model(static_in)
            self._graphs[shape] = (graph, static_in, static_out)
        return self._graphs[shape]

    def cuda_event_times(self, batch: np.ndarray) -> dict[str, float]:
        """One call's host-to-device copy, device compute and device-to-host copy, in ms."""
        if self.device.type != "cuda":
            raise ValueError("CUDA event timing needs a CUDA device")
        host = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).pin_memory()
        events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        with torch.inference_mode():
            events[0].record()
            x = host.to(self.device, non_blocking=True)
            events[1].record()
            out = self.run_on_device(x)
            events[2].record()
            result = out.to("cpu", non_blocking=True)
            events[3].record()
            events[3].synchronize()
        del result
        return {"h2d": events[0].elapsed_time(events[1]), "compute": events[1].elapsed_time(events[2]),
                "d2h": events[2].elapsed_time(events[3])}
