"""Accuracy gate: a lowered artifact is written only if its MRE stays within a bound of FP32's.

A refiner is gated as a cascade: its first stage (unchanged, FP32) runs first on each gate image
and the candidate refines the first stage's landmarks, exactly as `--refiner` runs it."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError
from edgeld.core.files import sha256_file
from edgeld.data import LandmarkDataset, Sample, load_grayscale, open_dataset
from edgeld.metrics import radial_errors_mm, sdr_percent
from edgeld.runtime import LandmarkDetector
from edgeld.runtime.runners import OnnxRuntimeRunner


def gate_samples(dataset: LandmarkDataset, split: str | None, validation: dict[str, Any]) -> tuple[str, list[Sample]]:
    """The gate's images: a named split, else the source model's held-out validation images."""
    if split is not None:
        return split, dataset.split(split)
    ids = set(validation.get("images") or [])
    if not ids:
        raise UserError("the model records no validation images; give --split NAME for the accuracy gate")
    pool = dataset.split(validation.get("split") or "train")
    samples = [s for s in pool if s.image_id in ids]
    if len(samples) != len(ids):
        raise UserError(f"{dataset.root} lacks some of the model's validation images; "
                        "give --split NAME for the accuracy gate")
    return "validation (held out from train)", samples


def drop_calibration_images(samples: list[Sample], calibration_sha256: Collection[str]
                            ) -> tuple[list[Sample], list[str]]:
    """The samples whose files are not calibration images (matched by content, whatever their
    path), and the ids of those dropped: a gate on the images the ranges were fitted to would
    flatter the lowered model."""
    if not calibration_sha256:
        return samples, []
    hashes = set(calibration_sha256)
    keep = [s for s in samples if sha256_file(s.path) not in hashes]
    kept = {s.image_id for s in keep}
    return keep, [s.image_id for s in samples if s.image_id not in kept]


@dataclass
class Gate:
    """Images and references loaded once, to evaluate many candidate graphs quickly."""

    io: ModelIO
    split: str
    images: list[np.ndarray]
    references: np.ndarray
    # each image's spacing as its dataset states it (None: unknown), handed to the cascade as a
    # device would state it, so that a refiner sees films of another spacing at its training scale
    stated_mm: list[tuple[float, float] | None]
    excluded: list[str] = field(default_factory=list)  # calibration images left out of the gate
    stage1: LandmarkDetector | None = None  # a refiner's first stage, run before each candidate
    stage1_name: str = ""
    stage1_sha256: str = ""

    @property
    def spacing(self) -> np.ndarray:
        """(N, 2) spacings to score in mm: the stated ones, 1 mm for an image without one."""
        return np.array([s or (1.0, 1.0) for s in self.stated_mm])

    @classmethod
    def load(cls, io: ModelIO, data_dir: str | Path, split: str | None,
             validation: dict[str, Any], calibration_sha256: Collection[str] = (),
             stage1: LandmarkDetector | None = None, reference: str | None = None) -> "Gate":
        """The gate's films and their landmarks in `reference`: the annotation the model was
        trained toward (None: models that record none, trained toward the dataset's default)."""
        dataset = open_dataset(data_dir)
        name, samples = gate_samples(dataset, split, validation)
        if tuple(dataset.landmark_names) != tuple(io.landmarks):
            raise UserError(f"{data_dir} has other landmarks than the model; gate on the model's dataset")
        samples, excluded = drop_calibration_images(samples, calibration_sha256)
        if not samples:
            raise UserError(f"every one of the gate's {len(excluded)} images ({name}) is in the "
                            "calibration set; give --split NAME with images it does not hold")
        return cls(io, name, [load_grayscale(s.path) for s in samples],
                   np.stack([s.reference(reference or dataset.default_reference) for s in samples]),
                   [s.spacing_mm for s in samples], excluded, stage1)

    def detector(self, onnx_path: str | Path) -> LandmarkDetector:
        """The graph at `onnx_path` as the gate runs it: alone, or as the refiner of the stage1."""
        candidate = LandmarkDetector(runner=OnnxRuntimeRunner(onnx_path, ["CPUExecutionProvider"]),
                                     io=self.io)
        if self.stage1 is None:
            return candidate
        return LandmarkDetector(runner=self.stage1.runner, io=self.stage1.io, refiner=candidate)

    def evaluate(self, onnx_path: str | Path) -> dict[str, float]:
        detector = self.detector(onnx_path)
        points = np.stack([d.landmarks_px for i in range(0, len(self.images), 8)
                           for d in detector.detect_batch(self.images[i:i + 8],
                                                          self.stated_mm[i:i + 8])])
        errors = radial_errors_mm(points, self.references, self.spacing)
        return {"mre_mm": float(errors.mean()), "sdr_2mm": sdr_percent(errors)["2.0"]}


def displacement_px(reference_onnx: str | Path, candidate_onnx: str | Path, io: ModelIO,
                    inputs: np.ndarray) -> float:
    """Mean decoded-landmark displacement (input pixels) between two graphs on the same inputs.

    A refiner's inputs are patches, K per image in landmark order; each is read on its own
    landmark's channel, as the cascade reads it."""
    codec = io.codec()
    with OnnxRuntimeRunner(reference_onnx, ["CPUExecutionProvider"]) as reference, \
            OnnxRuntimeRunner(candidate_onnx, ["CPUExecutionProvider"]) as candidate:
        ref_logits, cand_logits = reference.infer(inputs), candidate.infer(inputs)
    if io.patch_size:
        own = np.arange(len(inputs)) % len(io.landmarks)
        ref_logits = ref_logits[np.arange(len(inputs)), own][None]
        cand_logits = cand_logits[np.arange(len(inputs)), own][None]
    a, b = codec.decode(ref_logits)[0], codec.decode(cand_logits)[0]
    return float(np.linalg.norm(a - b, axis=-1).mean())
