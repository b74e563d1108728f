"""LandmarkNet: a small residual encoder with an FPN-style decoder emitting heatmap logits at 1/4.

Plain 3x3 convolutions with batch norm and ReLU: they fold into single convolutions at export,
quantize well to INT8 and run fast on every backend edgeld targets (ONNX Runtime CPU, TensorRT).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from edgeld.config import ModelSpec


def conv_bn_relu(cin: int, cout: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (ResNet's basic block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(channels, channels),
                                  conv_bn_relu(channels, channels, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class LandmarkNet(nn.Module):
    """Heatmap network: stem (stride 2), four stages (strides 4..32), top-down decoder at stride 4."""

    def __init__(self, spec: ModelSpec = ModelSpec()):
        super().__init__()
        if len(spec.widths) != len(spec.depths) + 1:
            raise ValueError("ModelSpec.widths needs one entry for the stem plus one per stage")
        self.spec = spec
        self.stem = conv_bn_relu(1, spec.widths[0], stride=2)
        self.stages = nn.ModuleList(
            nn.Sequential(conv_bn_relu(cin, cout, stride=2), *[BasicBlock(cout) for _ in range(depth)])
            for cin, cout, depth in zip(spec.widths[:-1], spec.widths[1:], spec.depths)
        )
        d = spec.decoder_width
        self.laterals = nn.ModuleList(nn.Conv2d(c, d, 1) for c in spec.widths[1:])
        self.fuse = conv_bn_relu(d, d)
        self.head = nn.Conv2d(d, spec.num_landmarks, 1)
        # feature taps for distillation: name, channels, stride (timm's feature_info)
        self.feature_info = [
            {"name": f"stage{i + 1}", "num_chs": c, "reduction": 2 ** (i + 2)}
            for i, c in enumerate(spec.widths[1:])
        ] + [{"name": "decoder", "num_chs": d, "reduction": 4}]

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder outputs at strides 4, 8, 16, 32."""
        feats = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward_decoder(self, stage_feats: list[torch.Tensor]) -> torch.Tensor:
        """Top-down fusion of the four stage outputs into the stride-4 map the head reads.

        Public because feature-sharing distillation runs a teacher's decoder on (adapted) student
        features."""
        top = self.laterals[-1](stage_feats[-1])
        for feat, lateral in zip(reversed(stage_feats[:-1]), reversed(self.laterals[:-1])):
            top = lateral(feat) + F.interpolate(top, size=feat.shape[-2:], mode="nearest")
        return self.fuse(top)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs at strides 4, 8, 16, 32, then the decoder's stride-4 feature map."""
        feats = self.forward_stages(x)
        return feats + [self.forward_decoder(feats)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's stride-4 feature map that the head reads."""
        return self.forward_decoder(self.forward_stages(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Heatmap logits (N, K, H/4, W/4) from decoder features."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
