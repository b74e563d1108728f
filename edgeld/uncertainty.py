"""Fit the per-landmark "likely far off" score of a model or a cascade on the first stage's own
validation films and store it in a checkpoint's contract (`edgeld uncertainty fit`).

Those films are the only annotated ones neither stage trained on. The refiner's epoch was chosen
on them (as a cascade), so the fitted threshold may be slightly optimistic; the figures measured on
test1 say by how much.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeld.core.errors import UserError
from edgeld.data.datasets import LandmarkDataset
from edgeld.data.images import load_grayscale
from edgeld.evaluate import trained_reference, validation_samples
from edgeld.metrics import radial_errors_mm
from edgeld.model_ref import ModelRef, rewrite_contract
from edgeld.runtime.uncertainty import (CASCADE_FEATURES, FAR_MM, STAGE1_FEATURES,
                                        UncertaintySpec, fit_uncertainty)


def annotator_prior(dataset: LandmarkDataset, split: str) -> np.ndarray:
    """Per landmark, the mean distance in mm between the dataset's two annotators on a split's
    films (senior and junior); ones when the dataset has a single annotation (no prior)."""
    samples = dataset.split(split)
    if not all({"senior", "junior"} <= set(s.landmarks) for s in samples) or \
            any(s.spacing_mm is None for s in samples):
        return np.ones(len(dataset.landmark_names))
    senior = np.stack([s.landmarks["senior"] for s in samples])
    junior = np.stack([s.landmarks["junior"] for s in samples])
    spacing = np.array([s.spacing_mm for s in samples], dtype=np.float64)
    return radial_errors_mm(senior, junior, spacing).mean(axis=0)


def fit_on_validation(ref: ModelRef, refiner: ModelRef | None, data_dir: str,
                      split: str = "train") -> UncertaintySpec:
    """The score of `ref` alone, or of `ref` followed by `refiner`, fitted on the validation films
    `ref` recorded in its training metadata (they belong to `split`)."""
    from edgeld.load import open_detector

    dataset, samples = validation_samples(ref, data_dir, split, "the score must be fitted on "
                                          "films the models never trained on", also=refiner)
    prior = annotator_prior(dataset, split)
    detector = open_detector(ref, refiner=refiner)
    detector.record_evidence = True
    evidence, points = [], []
    for s in samples:
        detection = detector.detect(load_grayscale(s.path), s.spacing_mm)  # as evaluate does
        if detection.evidence is None:
            raise UserError(f"{s.image_id} was judged unusable ({detection.quality.reason}); "
                            "validation films must all be measurable")
        evidence.append(detection.evidence)
        points.append(detection.landmarks_px)
    reference = trained_reference(dataset, ref, refiner)
    refs = np.stack([s.reference(reference) for s in samples])
    spacing = np.array([s.spacing_mm for s in samples], dtype=np.float64)
    far_off = radial_errors_mm(np.stack(points), refs, spacing) > FAR_MM
    features = np.stack(evidence)
    features[..., -1] = np.log(np.maximum(prior, 0.05))  # the prior column (see feature_matrix)
    names = CASCADE_FEATURES if refiner is not None else STAGE1_FEATURES
    stages = f"{ref} + {refiner}" if refiner is not None else str(ref)
    where = (f"{stages} on {len(samples)} validation films of {dataset.name} {split} "
             f"({int(far_off.sum())} of {far_off.size} landmarks > {FAR_MM:g} mm)")
    try:
        return fit_uncertainty(features.reshape(-1, features.shape[-1]), far_off.ravel(), names,
                               prior, fitted_on=where)
    except ValueError as exc:
        raise UserError(f"cannot fit a score for {stages}: {exc}") from exc


def attach_uncertainty(target: ModelRef, dst: str | Path, spec: UncertaintySpec) -> None:
    """Copy checkpoint `target` (the first stage for a score of it alone, the refiner for a
    cascade's) with the score in its contract."""
    if not target.is_checkpoint:
        raise UserError(f"{target} is an exported artifact: fit the checkpoint it came from, "
                        "then export again")
    rewrite_contract(target.path, dst, uncertainty=spec.to_dict())
