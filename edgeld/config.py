"""Typed configuration with defaults that say why. Standard library only (edgeld.core.contract is)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

# the model contract's parts, recorded in every checkpoint and manifest, are also training options
from edgeld.core.contract import HeatmapSpec, InputSpec


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a heatmap network of the `LandmarkNet` family."""

    widths: tuple[int, ...] = (16, 32, 48, 80, 128)  # stem, then stages at strides 4, 8, 16, 32
    depths: tuple[int, ...] = (1, 2, 2, 1)  # residual blocks per stage
    decoder_width: int = 48
    num_landmarks: int = 19


@dataclass(frozen=True)
class TrainSpec:
    """Optimization recipe. Defaults fit a 2-core CPU in well under an hour."""

    epochs: int = 100
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    seed: int = 0
    # 150 training images: 20 held out for model selection, never test1
    val_count: int = 20
    # geometric augmentation; lateral cephalograms are never mirrored (anatomy is not symmetric in view)
    rotate_deg: float = 8.0
    scale_range: float = 0.08
    shift_fraction: float = 0.04
    # elastic deformation: largest control displacement in input pixels (5x5 cubic B-spline grid);
    # 0 = off, and then no random draws, so the default recipe's runs stay reproducible
    elastic_px: float = 0.0
    # scales the exposure ranges (gamma, contrast, brightness, noise); 1 = the default recipe's
    intensity_strength: float = 1.0
    threads: int = 0  # 0: torch's default
    # multi-task pretraining (the teacher's): 0 turns an auxiliary task off
    offset_weight: float = 0.0
    reconstruction_weight: float = 0.0


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain JSON-able data."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def from_dict(cls: type, data: dict[str, Any]):
    """Build a config dataclass from plain data, rejecting unknown keys."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)


__all__ = ["InputSpec", "HeatmapSpec", "ModelSpec", "TrainSpec", "to_dict", "from_dict", "field"]
