"""Write an untrained checkpoint of a role's architecture, for latency-only measurements.

Latency does not depend on weight values, so a peer too large to ship (the 25 M-parameter
reference, 50 MB even in float16) is timed from this on machines its trained weights never reach.

    python benchmarks/kd-comparison/init_checkpoint.py reference out/reference-init.safetensors
"""
from __future__ import annotations

import sys
from dataclasses import replace

import torch

from edgeld.config import HeatmapSpec, InputSpec
from edgeld.data.datasets import ISBI2015_LANDMARKS
from edgeld.models.checkpoint import save_checkpoint
from edgeld.models.landmarknet import LandmarkNet
from edgeld.core.contract import ModelIO
from edgeld.train.trainer import ROLE_MODELS


def main(role: str, out: str) -> None:
    torch.manual_seed(0)
    model = LandmarkNet(replace(ROLE_MODELS[role], num_landmarks=len(ISBI2015_LANDMARKS)))
    io = ModelIO(InputSpec(), HeatmapSpec(), ISBI2015_LANDMARKS)
    save_checkpoint(out, model, io, {"training": {"role": role, "untrained": True}})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
