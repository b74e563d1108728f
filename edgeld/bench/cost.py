"""What a benchmarked model costs apart from time: parameters, MACs per image, bytes. Torch-free."""
from __future__ import annotations

from typing import Any, Sequence

from edgeld.model_ref import ModelRef


def model_cost(model: ModelRef, refiners: Sequence[ModelRef] = ()) -> dict[str, Any]:
    """Parameters, MACs per image and bytes of a model plus its refiners; a total is None when
    any stage does not know its part (an engine built without a source checkpoint, say)."""
    from edgeld.info import model_info

    parts = [model_info(m) for m in (model, *refiners)]
    total = {}
    for key, field in (("params", "params"), ("macs", "macs_per_image"), ("bytes", "bytes")):
        values = [p.get(field) for p in parts]
        total[key] = sum(values) if all(v is not None for v in values) else None
    return total


def is_untrained(model: ModelRef) -> bool:
    """A checkpoint written for latency measurements only (benchmarks/kd-comparison/init_checkpoint.py)."""
    return model.is_checkpoint and bool(model.metadata.get("training", {}).get("untrained"))
