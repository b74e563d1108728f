"""What a model expects and emits (ModelIO), and the JSON manifest written beside each artifact.

export/ writes manifests and runtime/ reads them: the two meet only through the file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeld.errors import UserError

MANIFEST_FORMAT = "edgeld-manifest/1"


@dataclass(frozen=True)
class ModelIO:
    """The contract between preprocessing, a network and decoding."""

    input_height: int
    input_width: int
    mean: float
    std: float
    heatmap_stride: int
    heatmap_sigma: float
    landmarks: tuple[str, ...]
    input_name: str = "image"
    output_name: str = "heatmaps"
    # refinement stage of a cascade: patches of patch_size pixels from the source reduced by
    # patch_factor; 0 for a whole-image model
    patch_size: int = 0
    patch_factor: int = 0
    # upright-film reference for orientation checks (runtime/orientation.py: OrientationReference
    # .to_dict()); None for refiners and for models exported before it existed
    orientation: dict[str, Any] | None = dataclasses.field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["landmarks"] = list(self.landmarks)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelIO":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["landmarks"] = tuple(fields.get("landmarks", ()))
        return cls(**fields)


# ModelIO fields without defaults: a manifest must carry them all
IO_REQUIRED = tuple(name for name, f in ModelIO.__dataclass_fields__.items()
                    if f.default is dataclasses.MISSING)


def manifest_path(artifact: str | Path) -> Path:
    """The manifest's path: the artifact's path plus `.json`."""
    return Path(str(artifact) + ".json")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_output_folder(folder: str | Path) -> None:
    """A UserError when a file stands where an output folder (or one above it) must go: checked
    before long work (training), which would otherwise fail only when it first writes."""
    folder = Path(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker == folder:
        raise UserError(f"cannot write into {folder}: it is a file, not a folder")
    if blocker is not None:
        raise UserError(f"cannot write into {folder}: {blocker} is a file, not a folder")


def make_parent_folder(path: str | Path) -> None:
    """Create the folder an output file goes into; a UserError where that cannot be (a file is in
    the way, no permission): an output location is the user's input."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise UserError(f"cannot write {path}: {blocker} is a file, not a folder") from exc
    except PermissionError as exc:
        raise UserError(f"cannot write {path}: permission denied ({exc.filename})") from exc


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file whole or not at all: a temp file in the same folder, then rename."""
    path = Path(path)
    make_parent_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except PermissionError as exc:
        raise UserError(f"cannot write {path}: permission denied ({path.parent})") from exc
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make shared artifacts unreadable to others
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def read_manifest(artifact: str | Path, verify_hash: bool = True) -> dict[str, Any]:
    """Load and check the manifest beside an artifact (format, hash of the artifact)."""
    path = manifest_path(artifact)
    if not path.is_file():
        raise UserError(f"no manifest beside {artifact} (expected {path}); "
                        "export the model with `edgeld export` to get one")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"manifest {path} is not valid JSON ({exc}); re-export the model") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{path} is not an edgeld manifest ({MANIFEST_FORMAT}); re-export the model")
    io = manifest.get("io")
    missing = [k for k in IO_REQUIRED if not isinstance(io, dict) or k not in io]
    if missing or not isinstance(manifest.get("artifact"), dict):
        what = f"'io' lacks {', '.join(missing)}" if missing else "no 'artifact' entry"
        raise UserError(f"{path} is incomplete ({what}); re-export the model")
    if verify_hash:
        expected = manifest.get("artifact", {}).get("sha256")
        if expected != sha256_file(artifact):
            raise UserError(f"{artifact} does not match its manifest's sha256 (modified or "
                            "truncated); re-export it")
    return manifest
