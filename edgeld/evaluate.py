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
from edgeld.runtime.detector import Detection
from edgeld.runtime.uncertainty import FAR_MM


def predict_samples(detector: LandmarkDetector, samples: list[Sample], batch_size: int = 8,
                    progress: bool = True, reduced: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Predicted landmarks (N, K, 2) in original pixels and the image sizes (N, 2) as (h, w)."""
    points, sizes, _ = detect_samples(detector, samples, batch_size, progress, reduced)
    return points, sizes


def detect_samples(detector: LandmarkDetector, samples: list[Sample], batch_size: int = 8,
                   progress: bool = True, reduced: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, list[Detection]]:
    """`predict_samples` plus each image's Detection (its usability verdict, its per-landmark
    scores). An unusable image keeps the landmarks the model found anyway, so that a split is
    always scored on all of its images. `reduced`: decode JPEGs only as far as the detector
    needs (edgeld.detect_file). Each film is detected at its dataset's pixel spacing, as a
    device states it, so that refiners see films of another spacing at their training scale."""
    points, sizes, found = [], [], []
    for start in tqdm(range(0, len(samples), batch_size), desc="evaluating", unit="batch",
                      disable=not progress, leave=False):
        batch = samples[start:start + batch_size]
        films = [read_film(detector, s.path, reduced) for s in batch]
        sizes += [f.original_hw for f in films]
        for d in detect_films(detector, films, [s.spacing_mm for s in batch]):
            points.append(d.landmarks_px)
            found.append(d)
    return np.stack(points), np.array(sizes), found


def validation_samples(ref: Any, data_dir: str, split: str, purpose: str, also: Any = None
                       ) -> tuple[LandmarkDataset, list[Sample]]:
    """The dataset and the validation films `ref` (a ModelRef) recorded in its training metadata,
    which belong to `split`: the only annotated films it never trained on. With `also` (a second
    stage that records its own), only the films neither trained on. `purpose` ends the error
    message when there are none (e.g. "the score must be fitted on ...")."""
    from edgeld.data import open_dataset

    dataset = open_dataset(data_dir)
    val_ids = set(ref.metadata.get("training", {}).get("val_images", []))
    if also is not None and also.metadata.get("training", {}).get("val_images"):
        val_ids &= set(also.metadata["training"]["val_images"])
    samples = [s for s in dataset.split(split) if s.image_id in val_ids]
    if not samples:
        for stage in (ref, also):
            training = stage.metadata.get("training", {}) if stage is not None else {}
            if training and training.get("val_images") == []:
                raise UserError(f"{stage} trained on every image (--val-count 0), so no film can "
                                f"judge it: {purpose}; fit its validated run instead")
        whose = f"{ref} and {also} record no common" if also is not None else f"{ref} records no"
        raise UserError(f"{whose} validation films in {data_dir} {split}: {purpose}")
    return dataset, samples


def trained_reference(dataset: LandmarkDataset, ref: Any, refiner: Any = None) -> str:
    """The annotation the last stage (`refiner`, else `ref`; ModelRefs) was trained toward, as its
    recorded recipe says: what a fit on its validation films measures against."""
    last = refiner if refiner is not None else ref
    return dataset.reference_of(last.metadata.get("training"))


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
    pred, _, found = detect_samples(detector, samples, batch_size, progress, reduced)
    errors = radial_errors_mm(pred, refs, spacing)
    per_image = [{"image": s.image_id, "mre_mm": float(e.mean()), "max_mm": float(e.max()),
                  "usable": d.quality.usable, "reason": d.quality.reason}
                 for s, e, d in zip(samples, errors, found)]
    return {"split": split, "reference": reference, **summarize(errors, dataset.landmark_names),
            "n_unusable": sum(not d.quality.usable for d in found),
            "uncertainty": flag_summary(errors, found), "per_image": per_image}


def flag_summary(errors: np.ndarray, found: list[Detection]) -> dict[str, Any] | None:
    """How well the `uncertain` flags pick out the landmarks more than 4 mm off (usable images
    with flags only), or None when the detector flags nothing (no fitted score)."""
    rows = [(e, d.uncertain) for e, d in zip(errors, found) if d.uncertain is not None]
    if not rows:
        return None
    err = np.concatenate([e for e, _ in rows])
    flag = np.concatenate([f for _, f in rows])
    far = err > FAR_MM
    return {"threshold_mm": FAR_MM, "landmarks": int(err.size), "flagged_share": float(flag.mean()),
            "far_off": int(far.sum()),
            "far_off_flagged_share": float(flag[far].mean()) if far.any() else None,
            "flagged_far_off_share": float(far[flag].mean()) if flag.any() else None,
            "mre_unflagged_mm": float(err[~flag].mean()) if (~flag).any() else None}


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
