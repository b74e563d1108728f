"""Built-in models: names that resolve to weights shipped inside the package."""
from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
BUILTIN_MODELS = {
    "isbi2015-student": "isbi2015-student.safetensors",
    # the multi-task teacher students are distilled from (float16 storage)
    "isbi2015-teacher": "isbi2015-teacher.safetensors",
    # cascade stages after isbi2015-student, coarse to fine:
    # --refiner isbi2015-refiner-coarse --refiner isbi2015-refiner
    "isbi2015-refiner-coarse": "isbi2015-refiner-coarse.safetensors",  # 64 px at 0.4 mm
    "isbi2015-refiner": "isbi2015-refiner.safetensors",  # 64 px at 0.2 mm
    # the same cascade trained toward the mean of the two annotators (train --reference mean),
    # the reference several published models train and score on
    "isbi2015-student-mean": "isbi2015-student-mean.safetensors",
    "isbi2015-refiner-mean": "isbi2015-refiner-mean.safetensors",
}


def builtin_path(name: str) -> Path | None:
    """The shipped checkpoint of a built-in model name, or None if the name is not built in."""
    filename = BUILTIN_MODELS.get(name)
    return WEIGHTS_DIR / filename if filename else None
