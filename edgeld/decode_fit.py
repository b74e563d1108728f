"""Choose how a model refines its heatmap peaks to sub-cell precision (the contract's
`softargmax_radius`, core/codec.py) on its own validation films: `edgeld decode fit`.

The network runs once per film; every candidate radius decodes the same maps, so the choice costs
one evaluation. A refiner is fitted behind its first stage as that stage's contract decodes it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError
from edgeld.data.images import load_grayscale
from edgeld.evaluate import references, trained_reference, validation_samples
from edgeld.metrics import radial_errors_mm
from edgeld.model_ref import ModelRef, checkpoint_metadata, rewrite_contract
from edgeld.runtime import LandmarkDetector

# 0 is the parabola vertex; beyond 8 cells a window holds the whole blob of a 1.5-cell target
RADII = (0, 1, 2, 3, 4, 5, 6, 8)


@dataclass(frozen=True)
class DecodeFit:
    """The chosen radius, each candidate's validation MRE (mm) and what it was measured on."""

    radius: int
    mre_mm: dict[int, float]
    fitted_on: str


def fit_radius(ref: ModelRef, refiner: ModelRef | None, data_dir: str, split: str = "train",
               progress: bool = True) -> DecodeFit:
    """The radius with the lowest MRE on `ref`'s recorded validation films (against the annotation
    the last stage was trained toward): of `ref` alone, or of `refiner` behind `ref`, on the films neither
    trained on. Ties go to the smaller radius. Films are measured as given (they are upright)."""
    from edgeld.load import open_detector

    dataset, samples = validation_samples(ref, data_dir, split, "the decoding must be chosen on "
                                          "films the models never trained on", also=refiner)
    detector = open_detector(ref, refiner=refiner)
    if detector.refiner is not None and detector.refiner.refiner is not None:
        raise UserError("give one refiner: the decoding of the last stage is fitted behind the others")
    found: dict[int, list[np.ndarray]] = {r: [] for r in RADII}
    for s in tqdm(samples, desc="decoding", unit="film", disable=not progress, leave=False):
        for r, points in candidate_points(detector, load_grayscale(s.path)).items():
            found[r].append(points)
    refs, spacing = references(dataset, samples, trained_reference(dataset, ref, refiner))
    mre = {r: float(radial_errors_mm(np.stack(p), refs, spacing).mean()) for r, p in found.items()}
    best = min(RADII, key=lambda r: (round(mre[r], 4), r))
    stages = f"{ref} + {refiner}" if refiner is not None else str(ref)
    return DecodeFit(best, mre, f"{stages} on {len(samples)} validation films of {dataset.name} {split}")


def candidate_points(detector: LandmarkDetector, image: np.ndarray) -> dict[int, np.ndarray]:
    """Per candidate radius, the (K, 2) source pixels of the detector's last stage on one film:
    the first stage alone, or its refiner behind it (the first stage decoded as its contract says)."""
    x, box = detector.preprocess(image)
    logits = detector.runner.infer(x[None])
    if detector.refiner is None:
        return {r: box.inverse_points(replace(detector.codec, softargmax_radius=r).decode(logits)[0][0])
                for r in RADII}
    first = box.inverse_points(detector.codec.decode(logits)[0][0])
    maps = detector.refiner.patch_maps(image, first)
    return {r: maps.decode(replace(detector.refiner.codec, softargmax_radius=r))[0] for r in RADII}


def attach_radius(target: ModelRef, dst: str | Path, radius: int) -> None:
    """Copy checkpoint `target` (MODEL, or the refiner of a cascade) with its decoding radius set."""
    if not target.is_checkpoint:
        raise UserError(f"{target} is an exported artifact: fit the checkpoint it came from, "
                        "then export again")
    io = ModelIO.from_dict(checkpoint_metadata(Path(target.path))["io"])
    rewrite_contract(target.path, dst, heatmap=replace(io.heatmap, softargmax_radius=radius))
