"""Fit a model's upright-film reference and usability thresholds on a dataset split, and store
them in its checkpoint (`edgeld orientation fit`).

Models trained before these existed get them this way; the weights are copied unchanged.
"""
from __future__ import annotations

from pathlib import Path

from edgeld.core.errors import UserError
from edgeld.data.datasets import open_dataset
from edgeld.data.images import load_grayscale
from edgeld.model_ref import ModelRef, checkpoint_metadata, rewrite_contract
from edgeld.runtime.orientation import (OrientationReference, film_thumbnails,
                                        leave_one_out_checks, reference_from_thumbnails)
from edgeld.runtime.quality import QualitySpec, fit_quality

def fit_on_split(ref: ModelRef, data_dir: str, split: str
                 ) -> tuple[OrientationReference, QualitySpec]:
    """The reference of the split's films as this model preprocesses them, and usability
    thresholds from those films' leave-one-out correlations and, on the model's own validation
    films when it records them (else the whole split), its first-stage confidence."""
    from edgeld.load import open_detector

    io = ref.io
    dataset = open_dataset(data_dir)
    samples = dataset.split(split)
    films = [load_grayscale(s.path) for s in samples]
    thumbs = film_thumbnails(films, io.input_height, io.input_width, io.mean, io.std,
                             reducing_gap=io.input.reducing_gap)
    where = f"{dataset.name} {split} ({len(samples)} films)"
    reference = reference_from_thumbnails(thumbs, fitted_on=where)
    correlations = [check.scores[0] for check in leave_one_out_checks(thumbs)]
    if not correlations:
        raise UserError(f"{data_dir} {split} holds fewer than two distinct films: nothing to fit on")
    val_ids = set(ref.metadata.get("training", {}).get("val_images", []))
    val = [f for s, f in zip(samples, films) if s.image_id in val_ids]
    # A model trained on every film has none left to validate on: its own training films, on
    # which it is most confident, set a stricter confidence floor than validation films would.
    which = f"{len(val)} validation films" if val else \
        f"all {len(films)} films (the model records no validation films)"
    detector = open_detector(ref)
    confidences = [float(detector.detect(f).confidence.mean()) for f in val or films]
    quality = fit_quality([f.shape for f in films], correlations, confidences,
                          min(io.input_height, io.input_width) // 2,
                          fitted_on=f"{where}; confidence on {which}")
    return reference, quality

def attach_to_checkpoint(src: str | Path, dst: str | Path, reference: OrientationReference,
                         quality: QualitySpec) -> None:
    """Copy a safetensors checkpoint with the reference and thresholds in its model contract
    (atomically)."""
    if checkpoint_metadata(Path(src)).get("io", {}).get("patch_size"):
        raise UserError(f"{src} is a refinement stage: it reads patches around landmarks found on "
                        "an upright film and needs no orientation reference")
    rewrite_contract(Path(src), dst, orientation=reference.to_dict(), quality=quality.to_dict())
