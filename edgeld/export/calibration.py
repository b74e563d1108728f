"""Calibration sets for INT8: which images, preprocessed exactly as the model sees them. numpy only.

A calibration folder holds `manifest.json` (dataset, split, image ids with sha256, preprocessing,
selection method) and `tensors.npy` (float32, N x 1 x H x W). The manifest is small and committed;
the tensors are regenerated from it and the dataset whenever they are missing.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

CALIBRATION_FORMAT = "edgeld-calibration/1"
THUMBNAIL_HW = (24, 20)  # coarse anatomy and exposure: enough to tell images apart, cheap to cluster


@dataclass
class CalibrationSet:
    manifest: dict[str, Any]
    tensors: np.ndarray  # (N, 1, H, W) float32, normalized model inputs

    def matches(self, io: ModelIO) -> bool:
        """Whether these tensors were preprocessed exactly as `io`'s model takes its input."""
        return preprocess_spec(self.manifest) == io.input


def preprocess_spec(manifest: dict[str, Any]) -> InputSpec:
    """The input spec a calibration manifest's tensors were made with."""
    p = manifest["preprocess"]
    return InputSpec(p["input_height"], p["input_width"], p["mean"], p["std"])


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
                      method: str = "diverse", seed: int = 0, progress: bool = True) -> CalibrationSet:
    """Select, preprocess and write a calibration set; returns it."""
    dataset = open_dataset(data_dir)
    samples = dataset.split(split)
    chosen = [samples[i] for i in select_images(samples, count, method, seed, progress)]
    tensors = _preprocess_all(chosen, io.input, progress)
    out = Path(out_dir)
    manifest = {
        "format": CALIBRATION_FORMAT,
        "name": out.name,
        "dataset": {"name": dataset.name, "root": str(data_dir), "split": split},
        "selection": {"method": method, "seed": seed, "count": count,
                      "features": f"letterboxed {THUMBNAIL_HW[0]}x{THUMBNAIL_HW[1]} thumbnail + "
                                  "intensity percentiles" if method == "diverse" else None},
        "preprocess": {"input_height": io.input_height, "input_width": io.input_width,
                       "mean": io.mean, "std": io.std, "reducing_gap": REDUCING_GAP,
                       "letterbox": "centred, zero padding, antialiased bilinear"},
        "images": [{"id": s.image_id, "sha256": sha256_file(s.path)} for s in chosen],
    }
    _write_tensors(out, tensors, manifest)
    return CalibrationSet(manifest, tensors)


def _preprocess_all(samples: list[Sample], spec: InputSpec, progress: bool) -> np.ndarray:
    return np.stack([preprocess(load_grayscale(s.path), spec.height, spec.width, spec.mean,
                                spec.std)[0]
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
    tensors = _preprocess_all(samples, preprocess_spec(manifest), progress)
    _write_tensors(folder, tensors, manifest)
    return CalibrationSet(manifest, tensors)
