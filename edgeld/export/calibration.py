"""Calibration sets for INT8: which images, preprocessed exactly as the model sees them. numpy only.

A calibration folder holds `manifest.json` (dataset, split, image ids with sha256, preprocessing,
selection method) and `tensors.npy` (float32, N x 1 x H x W). The manifest is small and committed;
the tensors are regenerated from it and the dataset whenever they are missing.

A first stage's set holds the whole letterboxed images. A refiner's set (its contract has
`patch_size` > 0) holds the patches it would read in the cascade: the first stage runs on each
chosen image, and the patches are cut around its landmarks by the runtime's own code
(`edgeld.runtime.patches.patches_around`), K per image, image after image. The manifest records
the first stage (name, kind, sha256), the patch spec and each image's first-stage landmarks
(source pixels, rounded to 0.001 px before cutting), so regenerating the tensors needs only the
dataset, not the first stage.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from edgeld.core.contract import InputSpec, ModelIO
from edgeld.core.errors import UserError
from edgeld.core.files import atomic_write_bytes, atomic_write_json, sha256_file
from edgeld.core.letterbox import REDUCING_GAP, preprocess
from edgeld.data import open_dataset
from edgeld.data.datasets import Sample
from edgeld.data.images import load_grayscale
from edgeld.options import SELECTION_METHODS
from edgeld.runtime.patches import PatchSpec, patches_at_training_scale
from edgeld.runtime.spacing import resampling_scale

if TYPE_CHECKING:
    from edgeld.model_ref import ModelArg

CALIBRATION_FORMAT = "edgeld-calibration/1"
DEFAULT_STAGE1 = "isbi2015-student"  # the shipped cascade's first stage
POINT_DECIMALS = 3  # first-stage landmarks as recorded (and cut around): 0.001 source pixels
PATCH_SAMPLING = ("integer box reduction, then float32 bilinear sampling centred on each landmark, "
                  "zero outside")
THUMBNAIL_HW = (24, 20)  # coarse anatomy and exposure: enough to tell images apart, cheap to cluster


@dataclass
class CalibrationSet:
    manifest: dict[str, Any]
    tensors: np.ndarray  # (N, 1, H, W) float32, normalized model inputs

    def matches(self, io: ModelIO) -> bool:
        """Whether these tensors were preprocessed exactly as `io`'s model takes its input (whole
        images for a first stage, patches of the same size and scale for a refiner)."""
        spec = preprocess_spec(self.manifest)
        if io.patch_size:  # a refiner's patches pass through no letterbox: its resampling is moot
            spec = replace(spec, reducing_gap=io.input.reducing_gap)
        return spec == io.input and \
            patch_spec(self.manifest) == (PatchSpec(io.patch_size, io.patch_factor)
                                          if io.patch_size else None)

    @property
    def stage1(self) -> dict[str, Any] | None:
        """The first stage a refiner's set was cut with (name, kind, sha256); None for whole images."""
        return self.manifest.get("stage1")


def patch_spec(manifest: dict[str, Any]) -> PatchSpec | None:
    """The patch spec a refiner's calibration tensors were cut with; None for whole images."""
    patch = manifest["preprocess"].get("patch")
    return PatchSpec(patch["size"], patch["factor"]) if patch else None


def preprocess_spec(manifest: dict[str, Any]) -> InputSpec:
    """The input spec a calibration manifest's tensors were made with."""
    p = manifest["preprocess"]
    # sets cut before the letterbox's resampling was part of the contract used 3.0
    return InputSpec(p["input_height"], p["input_width"], p["mean"], p["std"],
                     p.get("reducing_gap", REDUCING_GAP))


def select_images(samples: list[Sample], count: int, method: str, seed: int = 0,
                  progress: bool = True) -> list[int]:
    """Indices of `count` samples: the first, a seeded random draw, or diverse medoids.

    `diverse` clusters the images (k-means on small letterboxed thumbnails plus intensity
    percentiles, k = count) and takes the image nearest each centre: the set covers the
    exposures and anatomies present, with each cluster represented by a typical member rather than
    an outlier that would stretch the activation ranges.
    """
    if method not in SELECTION_METHODS:
        raise UserError(f"unknown selection method '{method}' (choose from {', '.join(SELECTION_METHODS)})")
    if not 0 < count <= len(samples):
        raise UserError(f"--count must be between 1 and {len(samples)} (the split's size)")
    if method == "first":
        return list(range(count))
    rng = np.random.default_rng(seed)
    if method == "random":
        return sorted(rng.choice(len(samples), size=count, replace=False).tolist())
    feats = np.stack([_image_features(load_grayscale(s.path)) for s in
                      tqdm(samples, desc="image features", disable=not progress, leave=False)])
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    centres = _kmeans(feats, count, rng)
    chosen: list[int] = []
    for c in centres:  # nearest unused image to each centre
        order = np.argsort(((feats - c) ** 2).sum(1))
        chosen.append(int(next(i for i in order if i not in chosen)))
    return sorted(chosen)


def _image_features(image: np.ndarray) -> np.ndarray:
    thumb, _ = preprocess(image, *THUMBNAIL_HW, 0.0, 1.0)
    pct = np.percentile(thumb, [5, 25, 50, 75, 95])
    return np.concatenate([thumb.ravel(), pct * 4])


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 20) -> np.ndarray:
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):  # k-means++ seeding
        d = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else x[rng.integers(len(x))])
    centres = np.stack(centres)
    for _ in range(iters):
        labels = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            if np.any(labels == j):
                centres[j] = x[labels == j].mean(0)
    return centres


def build_calibration(data_dir: str | Path, split: str, count: int, out_dir: str | Path, io: ModelIO,
                      method: str = "diverse", seed: int = 0, progress: bool = True,
                      stage1: ModelArg | None = None) -> CalibrationSet:
    """Select, preprocess and write a calibration set for the model of contract `io`; returns it.

    For a refiner, `stage1` (default isbi2015-student) is the whole-image model whose landmarks
    the patches are cut around; for a first stage giving one is an error."""
    stage1_ref = _stage1_for(io, stage1)  # refused before any image is read
    dataset = open_dataset(data_dir)
    samples = dataset.split(split)
    chosen = [samples[i] for i in select_images(samples, count, method, seed, progress)]
    out = Path(out_dir)
    preprocess_record = {"input_height": io.input_height, "input_width": io.input_width,
                         "mean": io.mean, "std": io.std}
    images: list[dict[str, Any]] = [{"id": s.image_id, "sha256": sha256_file(s.path)} for s in chosen]
    extra: dict[str, Any] = {}
    if stage1_ref is None:
        tensors = _preprocess_all(chosen, io.input, progress)
        preprocess_record.update(reducing_gap=io.input.reducing_gap,
                                 letterbox="centred, zero padding, antialiased bilinear")
    else:
        points = _stage1_points(stage1_ref, chosen, progress)
        for entry, p in zip(images, points):
            entry["stage1_points_px"] = p.tolist()
        spec = PatchSpec(io.patch_size, io.patch_factor)
        preprocess_record["patch"] = {"size": spec.size, "factor": spec.factor,
                                      "sampling": PATCH_SAMPLING}
        if any(resampling_scale(s.spacing_mm, 1, io.film_spacing_mm, spec.factor) for s in chosen):
            # films of another spacing are cut at the refiner's training scale, as the runtime
            # cuts them; the manifest keeps that scale so the tensors regenerate the same
            preprocess_record["patch"]["film_spacing_mm"] = list(io.film_spacing_mm)
        tensors = _cut_all(chosen, points, spec, io.input, io.film_spacing_mm)
        extra["stage1"] = {"name": stage1_ref.name, "kind": stage1_ref.kind,
                           "sha256": sha256_file(stage1_ref.path)}
    manifest = {
        "format": CALIBRATION_FORMAT,
        "name": out.name,
        "dataset": {"name": dataset.name, "root": str(data_dir), "split": split},
        "selection": {"method": method, "seed": seed, "count": count,
                      "features": f"letterboxed {THUMBNAIL_HW[0]}x{THUMBNAIL_HW[1]} thumbnail + "
                                  "intensity percentiles" if method == "diverse" else None},
        "preprocess": preprocess_record,
        **extra,
        "images": images,
    }
    _write_tensors(out, tensors, manifest)
    return CalibrationSet(manifest, tensors)


def _stage1_for(io: ModelIO, stage1: ModelArg | None):
    """The first stage a refiner's set needs (resolved and checked), or None for a first stage."""
    from edgeld.model_ref import resolve_model

    if not io.patch_size:
        if stage1 is not None:
            raise UserError("--stage1 applies to a refiner's calibration set only; this model is a "
                            "first stage and is calibrated on whole images")
        return None
    ref = resolve_model(stage1 if stage1 is not None else DEFAULT_STAGE1)
    if ref.kind == "engine":
        raise UserError(f"--stage1 {ref} is a TensorRT engine; give the first stage as a built-in "
                        "name, a checkpoint or an .onnx (calibration runs on the CPU)")
    if ref.io.patch_size:
        raise UserError(f"--stage1 {ref} is a refiner; give a whole-image first stage "
                        f"(e.g. {DEFAULT_STAGE1})")
    if tuple(ref.io.landmarks) != tuple(io.landmarks):
        raise UserError(f"--stage1 {ref} finds other landmarks than the refiner")
    return ref


def _stage1_points(ref, samples: list[Sample], progress: bool) -> list[np.ndarray]:
    """The first stage's landmarks (source pixels, K x 2, rounded) on each sample, as the cascade
    hands them to its refiner (the first stage alone, orientation and quality checks included)."""
    from edgeld.load import open_detector

    points = []
    with open_detector(ref) as detector:
        for s in tqdm(samples, desc="first stage", disable=not progress, leave=False):
            detection = detector.detect(load_grayscale(s.path))
            if not detection.quality.usable:
                raise UserError(f"calibration image {s.image_id}: the first stage finds it not "
                                f"usable ({detection.quality.reason}); choose another split")
            points.append(np.round(detection.landmarks_px.astype(np.float64), POINT_DECIMALS))
    return points


def _cut_all(samples: list[Sample], points: list[np.ndarray], spec: PatchSpec,
             io_input: InputSpec, film_spacing_mm: tuple[float, float] | None) -> np.ndarray:
    """Every sample's patches around its points, each film first brought to the refiner's
    training scale (`film_spacing_mm`) when its dataset states another spacing."""
    return np.concatenate([patches_at_training_scale(load_grayscale(s.path), p, s.spacing_mm,
                                                     film_spacing_mm, spec, io_input.mean,
                                                     io_input.std)
                           for s, p in zip(samples, points)]).astype(np.float32)


def _preprocess_all(samples: list[Sample], spec: InputSpec, progress: bool) -> np.ndarray:
    return np.stack([preprocess(load_grayscale(s.path), spec.height, spec.width, spec.mean,
                                spec.std, spec.reducing_gap)[0]
                     for s in tqdm(samples, desc="calibration tensors", disable=not progress,
                                   leave=False)]).astype(np.float32)


def _write_tensors(out: Path, tensors: np.ndarray, manifest: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    np.save(buffer, tensors, allow_pickle=False)
    atomic_write_bytes(out / "tensors.npy", buffer.getvalue())
    manifest["tensors"] = {"file": "tensors.npy", "shape": list(tensors.shape),
                           "sha256": sha256_file(out / "tensors.npy")}
    atomic_write_json(out / "manifest.json", manifest)


def load_calibration(path: str | Path, data_dir: str | Path | None = None,
                     progress: bool = True) -> CalibrationSet:
    """Read a calibration set; regenerate its tensors from the manifest when missing or stale."""
    import json

    folder = Path(path)
    manifest_file = folder / "manifest.json"
    if not manifest_file.is_file():
        raise UserError(f"no calibration set at {folder} (expected {manifest_file}); "
                        "make one with `edgeld calibrate`")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{manifest_file} is not valid JSON ({exc})") from exc
    if manifest.get("format") != CALIBRATION_FORMAT:
        raise UserError(f"{manifest_file} is not an edgeld calibration manifest")
    tensors_file = folder / "tensors.npy"
    expected = manifest.get("tensors", {}).get("sha256")
    if tensors_file.is_file() and sha256_file(tensors_file) == expected:
        return CalibrationSet(manifest, np.load(tensors_file, allow_pickle=False))
    return regenerate(folder, manifest, data_dir, progress)


def regenerate(folder: Path, manifest: dict[str, Any], data_dir: str | Path | None,
               progress: bool) -> CalibrationSet:
    """Rebuild tensors from the manifest's image list, checking each image's sha256."""
    root = Path(data_dir or manifest["dataset"]["root"])
    dataset = open_dataset(root)
    by_id = {s.image_id: s for s in dataset.split(manifest["dataset"]["split"])}
    samples = []
    for entry in manifest["images"]:
        sample = by_id.get(entry["id"])
        if sample is None or sha256_file(sample.path) != entry["sha256"]:
            raise UserError(f"calibration image {entry['id']} is missing or changed in {root}; "
                            "rebuild the set with `edgeld calibrate`")
        samples.append(sample)
    spec = patch_spec(manifest)
    if spec is None:
        tensors = _preprocess_all(samples, preprocess_spec(manifest), progress)
    else:  # the recorded first-stage landmarks: no first stage needed, the same patches
        points = [np.asarray(e["stage1_points_px"], dtype=np.float64) for e in manifest["images"]]
        recorded = manifest["preprocess"]["patch"].get("film_spacing_mm")
        tensors = _cut_all(samples, points, spec, preprocess_spec(manifest),
                           tuple(recorded) if recorded else None)
    _write_tensors(folder, tensors, manifest)
    return CalibrationSet(manifest, tensors)
