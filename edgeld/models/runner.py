"""The torch backend as a runtime Runner, so torch models share the detector's pre/post-processing."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TorchRunner:
    """Runs a torch model on CPU (or a given device) in inference mode."""

    def __init__(self, model: nn.Module, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.name = f"torch-{self.device.type}"

    def activate(self) -> None:
        pass

    def infer(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device))
        return out.float().cpu().numpy()

    def deactivate(self) -> None:
        pass
