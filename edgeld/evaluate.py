"""Accuracy of a detector on a dataset split, and the mean-shape floor. Torch-free."""
from __future__ import annotations

from typing import Any

import numpy as np
from tqdm import tqdm

from edgeld.core.errors import UserError
from edgeld.data import LandmarkDataset, Sample
from edgeld.detect_file import detect_films, read_film
from edgeld.metrics import mean_shape, place_mean_shape, radial_errors_mm, summarize
from edgeld.runtime import LandmarkDetector
from edgeld.runtime.quality import Quality


def predict_samples(detector: LandmarkDetector, samples: list[Sample], batch_size: int = 8,
                    progress: bool = True, reduced: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Predicted landmarks (N, K, 2) in original pixels and the image sizes (N, 2) as (h, w)."""
    points, sizes, _ = detect_samples(detector, samples, batch_size, progress, reduced)
    return points, sizes


def detect_samples(detector: LandmarkDetector, samples: list[Sample], batch_size: int = 8,
                   progress: bool = True, reduced: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, list[Quality]]:
    """`predict_samples` plus each image's usability verdict. An unusable image keeps the
    landmarks the model found anyway, so that a split is always scored on all of its images.
    `reduced`: decode JPEGs only as far as the detector needs (edgeld.detect_file)."""
    points, sizes, quality = [], [], []
    for start in tqdm(range(0, len(samples), batch_size), desc="evaluating", unit="batch",
                      disable=not progress, leave=False):
        films = [read_film(detector, s.path, reduced) for s in samples[start:start + batch_size]]
        sizes += [f.original_hw for f in films]
        for d in detect_films(detector, films):
            points.append(d.landmarks_px)
            quality.append(d.quality)
    return np.stack(points), np.array(sizes), quality


def references(dataset: LandmarkDataset, samples: list[Sample], reference: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """Reference landmarks (N, K, 2) and (row, col) spacings (N, 2) of the samples."""
    missing = [s.image_id for s in samples if s.spacing_mm is None]
    if missing:
        raise UserError(f"{len(missing)} images have no pixel spacing (e.g. {missing[0]}); "
                        "errors in mm need one: add pixel_spacing_mm to dataset.json")
    return (np.stack([s.reference(reference) for s in samples]),
            np.array([s.spacing_mm for s in samples], dtype=np.float64))


def evaluate(detector: LandmarkDetector, dataset: LandmarkDataset, split: str,
             reference: str | None = None, batch_size: int = 8, progress: bool = True,
             reduced: bool = False) -> dict[str, Any]:
    """The evaluate JSON's accuracy fields for one split."""
    samples = dataset.split(split)
    reference = reference or dataset.default_reference
    if tuple(detector.names) != tuple(dataset.landmark_names):
        raise UserError(f"the model predicts {len(detector.names)} landmarks "
                        f"({', '.join(detector.names[:3])}, ...) but {dataset.root} has "
                        f"{len(dataset.landmark_names)} ({', '.join(dataset.landmark_names[:3])}, ...)")
    refs, spacing = references(dataset, samples, reference)
    pred, _, quality = detect_samples(detector, samples, batch_size, progress, reduced)
    errors = radial_errors_mm(pred, refs, spacing)
    per_image = [{"image": s.image_id, "mre_mm": float(e.mean()), "max_mm": float(e.max()),
                  "usable": q.usable, "reason": q.reason}
                 for s, e, q in zip(samples, errors, quality)]
    return {"split": split, "reference": reference, **summarize(errors, dataset.landmark_names),
            "n_unusable": sum(not q.usable for q in quality), "per_image": per_image}


def mean_shape_baseline(dataset: LandmarkDataset, split: str, reference: str | None = None,
                        train_split: str = "train") -> dict[str, Any]:
    """The trivial floor: the mean training shape (in normalized coordinates) placed on every image."""
    from PIL import Image

    reference = reference or dataset.default_reference

    def sizes(samples: list[Sample]) -> np.ndarray:
        out = []
        for s in samples:
            with Image.open(s.path) as img:  # header only: no decode
                out.append((img.height, img.width))
        return np.array(out)

    train = dataset.split(train_split)
    train_refs = np.stack([s.reference(dataset.default_reference) for s in train])
    shape = mean_shape(train_refs, sizes(train))
    samples = dataset.split(split)
    refs, spacing = references(dataset, samples, reference)
    errors = radial_errors_mm(place_mean_shape(shape, sizes(samples)), refs, spacing)
    return {"model": "mean-shape baseline", "split": split, "reference": reference,
            **summarize(errors, dataset.landmark_names)}
