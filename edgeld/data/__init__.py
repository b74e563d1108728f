"""Reading X-rays and landmark annotations; preprocessing shared by training and the runtime.

Nothing here imports torch (the torch Datasets live in `edgeld.torchside`).
"""
from edgeld.data.datasets import LandmarkDataset, Sample, open_dataset
from edgeld.data.images import load_grayscale
from edgeld.data.transforms import Letterbox, normalize, preprocess

__all__ = [
    "LandmarkDataset",
    "Letterbox",
    "Sample",
    "load_grayscale",
    "normalize",
    "open_dataset",
    "preprocess",
]
