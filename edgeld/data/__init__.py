"""Reading X-rays and landmark annotations. The letterbox they go through lives in
`edgeld.core.letterbox`, shared with the runtime.

Nothing here imports torch (the torch Datasets live in `edgeld.torchside`).
"""
from edgeld.data.datasets import BUNDLED_SAMPLES, LandmarkDataset, Sample, open_dataset
from edgeld.data.images import load_grayscale

__all__ = [
    "BUNDLED_SAMPLES",
    "LandmarkDataset",
    "Sample",
    "load_grayscale",
    "open_dataset",
]
