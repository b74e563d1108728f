"""Landmark datasets on disk, in either layout edgeld reads.

* shared layout: `dataset.json`, `images/`, `annotations/<reference>.csv`, `<split>.txt`
  (see the ISBI 2015 copy's README): everything is read from the files, nothing assumed.
* ISBI 2015 challenge layout: `RawImage/{TrainingData,Test1Data,Test2Data}/*.bmp` and
  `AnnotationsByMD/{400_senior,400_junior}/NNN.txt` (first 19 lines "x,y").
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeld.core.errors import UserError

ISBI2015_LANDMARKS = (
    "sella", "nasion", "orbitale", "porion", "subspinale", "supramentale", "pogonion", "menton",
    "gnathion", "gonion", "lower_incisal_incision", "upper_incisal_incision", "upper_lip",
    "lower_lip", "subnasale", "soft_tissue_pogonion", "posterior_nasal_spine",
    "anterior_nasal_spine", "articulare",
)
# three ISBI 2015 test1 films with their senior annotations, shipped with the package (split "demo")
BUNDLED_SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "isbi2015-demo"
CHALLENGE_SPLITS = {"train": "TrainingData", "test1": "Test1Data", "test2": "Test2Data"}


@dataclass(frozen=True)
class Sample:
    """One image with its annotations: reference name -> (K, 2) array of (x, y) pixels."""

    image_id: str
    path: Path
    landmarks: dict[str, np.ndarray] = field(hash=False, compare=False)
    spacing_mm: tuple[float, float] | None = None  # (row, column) pixel spacing

    def reference(self, which: str) -> np.ndarray:
        """Landmarks of one annotator, or the mean of senior and junior."""
        if which == "mean":
            missing = {"senior", "junior"} - set(self.landmarks)
            if missing:
                raise UserError(f"reference 'mean' needs senior and junior annotations; "
                                f"{self.image_id} lacks {sorted(missing)}")
            return (self.landmarks["senior"] + self.landmarks["junior"]) / 2.0
        if not self.landmarks:  # listed in a split file but in no annotation table
            raise UserError(f"image {self.image_id} is in a split but has no annotation at all: "
                            "add its landmarks or remove it from the split")
        if which not in self.landmarks:
            raise UserError(f"image {self.image_id} has no '{which}' annotation "
                            f"(has: {', '.join(sorted(self.landmarks))})")
        return self.landmarks[which]


@dataclass
class LandmarkDataset:
    """A dataset: landmark names, default reference and the samples of each split."""

    name: str
    root: Path
    landmark_names: tuple[str, ...]
    splits: dict[str, list[Sample]]
    default_reference: str = "senior"

    def split(self, name: str) -> list[Sample]:
        """The samples of a split, or a UserError naming the splits there are."""
        if name not in self.splits:
            raise UserError(f"split '{name}' not found in {self.root} "
                            f"(splits: {', '.join(sorted(self.splits)) or 'none'})")
        samples = self.splits[name]
        if not samples:
            raise UserError(f"split '{name}' in {self.root} is empty")
        root = Path(self.root).resolve()
        for s in samples:  # a split file names images, never files elsewhere on the machine
            if Path(s.image_id).is_absolute() or ".." in Path(s.image_id).parts \
                    or not s.path.resolve().is_relative_to(root):
                raise UserError(f"split '{name}' in {self.root} names '{s.image_id}', which points "
                                "outside the dataset: list image files by their names in its "
                                "image folder")
        return samples

    def training_reference(self, samples: list[Sample], name: str | None = None) -> str:
        """The annotation a model is trained toward and selected on: `name` (an annotator, or
        "mean"), default this dataset's; a UserError when a training film lacks it."""
        name = name or self.default_reference
        for s in samples:
            s.reference(name)  # raises, naming the film and the annotations it has
        return name

    def reference_of(self, training: dict | None) -> str:
        """The annotation a model's recorded recipe (its `training` metadata) was trained toward;
        models trained before the recipe recorded it used this dataset's default."""
        return (training or {}).get("reference") or self.default_reference


def open_dataset(root: str | Path) -> LandmarkDataset:
    """Open a dataset folder of either supported layout, chosen from what it holds."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset folder not found: {root}")
    if (root / "dataset.json").is_file():
        return _read_shared_layout(root)
    if (root / "RawImage").is_dir() and (root / "AnnotationsByMD").is_dir():
        return _read_challenge_layout(root)
    raise UserError(f"{root} is not a dataset edgeld reads: expected dataset.json (shared layout) "
                    "or RawImage/ and AnnotationsByMD/ (ISBI 2015 challenge layout)")


def _read_shared_layout(root: Path) -> LandmarkDataset:
    try:
        meta = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
        names = tuple(str(n) for n in meta["landmarks"])
        spacing = meta.get("pixel_spacing_mm")
        spacing = (float(spacing[0]), float(spacing[1])) if spacing is not None else None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise UserError(f"{root / 'dataset.json'} is not valid ({exc}); it needs 'landmarks' "
                        "and optionally 'pixel_spacing_mm' [row, column]") from exc
    if not names:
        raise UserError(f"{root / 'dataset.json'} lists no landmarks")
    ann_dir = root / "annotations"
    references = {p.stem: _read_annotation_csv(p, names) for p in sorted(ann_dir.glob("*.csv"))}
    if not references:
        raise UserError(f"no annotation CSV files in {ann_dir}")
    splits: dict[str, list[Sample]] = {}
    for split_file in sorted(root.glob("*.txt")):
        ids = [line.strip() for line in split_file.read_text(encoding="utf-8").splitlines()]
        splits[split_file.stem] = [
            Sample(image_id=i, path=root / "images" / i,
                   landmarks={ref: table[i] for ref, table in references.items() if i in table},
                   spacing_mm=spacing)
            for i in ids if i
        ]
    return LandmarkDataset(str(meta.get("name", root.name)), root, names, splits,
                           "senior" if "senior" in references else next(iter(references)))


def _read_annotation_csv(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    expected = ["image"] + [f"{n}_{axis}" for n in names for axis in ("x", "y")]
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or [h.strip() for h in rows[0]] != expected:
        raise UserError(f"{path}: header does not match dataset.json's {len(names)} landmarks "
                        f"(expected image,{names[0]}_x,{names[0]}_y,...)")
    table = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(expected):
            raise UserError(f"{path}:{line_no}: {len(row) - 1} values, expected {len(names) * 2}")
        table[row[0].strip()] = _parse_points(row[1:], f"{path}:{line_no}")
    return table


def _parse_points(values: list[str], where: str) -> np.ndarray:
    try:
        pts = np.array([float(v) for v in values], dtype=np.float64).reshape(-1, 2)
    except ValueError as exc:
        raise UserError(f"{where}: landmark values must be numbers ({exc})") from exc
    if not np.all(np.isfinite(pts)):
        raise UserError(f"{where}: landmark values must be finite numbers (found NaN or inf)")
    return pts


def _read_challenge_layout(root: Path) -> LandmarkDataset:
    ann_root = root / "AnnotationsByMD"
    ref_dirs = {"senior": ann_root / "400_senior", "junior": ann_root / "400_junior"}
    ref_dirs = {k: v for k, v in ref_dirs.items() if v.is_dir()}
    if not ref_dirs:
        raise UserError(f"{ann_root} holds neither 400_senior/ nor 400_junior/")
    splits: dict[str, list[Sample]] = {}
    for split, folder in CHALLENGE_SPLITS.items():
        image_dir = root / "RawImage" / folder
        if not image_dir.is_dir():
            continue
        samples = []
        for image in sorted(image_dir.glob("*.bmp")):
            landmarks = {ref: _read_challenge_txt(d / f"{image.stem}.txt")
                         for ref, d in ref_dirs.items() if (d / f"{image.stem}.txt").is_file()}
            samples.append(Sample(image.name, image, landmarks, (0.1, 0.1)))
        splits[split] = samples
    return LandmarkDataset("isbi2015", root, ISBI2015_LANDMARKS, splits, next(iter(ref_dirs)))


def _read_challenge_txt(path: Path) -> np.ndarray:
    k = len(ISBI2015_LANDMARKS)
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    if len(lines) < k:
        raise UserError(f"{path}: {len(lines)} lines, expected at least {k} 'x,y' lines")
    values = [v for ln in lines[:k] for v in ln.split(",")]
    if len(values) != 2 * k:
        raise UserError(f"{path}: each of the first {k} lines must be 'x,y'")
    return _parse_points(values, str(path))
