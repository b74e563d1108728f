"""The JSON manifest written beside every artifact (`<artifact>.json`): one typed class that
writes, reads and validates itself.

export/ writes manifests and runtime/ reads them: the two meet only through the file.

Schema versions: "edgeld-manifest/2" (this one) adds the model contract's optional entries
(orientation) to "io" and validates the artifact entry's types. "edgeld-manifest/1" manifests still
read: the entries they lack take their defaults.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError
from edgeld.core.files import atomic_write_json, sha256_file

MANIFEST_FORMAT = "edgeld-manifest/2"
READABLE_FORMATS = ("edgeld-manifest/1", MANIFEST_FORMAT)
REEXPORT = "re-export it with `edgeld export MODEL --to onnx --out PATH.onnx`"
# top-level entries every manifest has; a writer adds its own sections beside them
_COMMON = ("format", "artifact", "io", "source", "tools")


def manifest_path(artifact: str | Path) -> Path:
    """The manifest's path: the artifact's path plus `.json`."""
    return Path(str(artifact) + ".json")


@dataclass(frozen=True)
class ArtifactEntry:
    """The file a manifest vouches for. Defaults are what version-1 readers assumed when absent."""

    file: str
    sha256: str
    kind: str = "onnx"  # "onnx" or "engine"
    precision: str = "fp32"  # "fp32", "fp16" or "int8"
    bytes: int | None = None
    opset: int | None = None  # ONNX artifacts only

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; entries without a value are left out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, data: Any) -> "ArtifactEntry":
        """Parse and type-check; a ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("no 'artifact' entry")
        known = {f.name for f in fields(cls)}
        entry = cls(**{k: v for k, v in data.items() if k in known})
        for name, kind in (("file", str), ("sha256", str), ("kind", str), ("precision", str)):
            if not isinstance(getattr(entry, name), kind):
                raise ValueError(f"'artifact' has no valid '{name}'")
        return entry


@dataclass(frozen=True)
class Manifest:
    """What an artifact is (artifact), what it takes and emits (io), where it came from (source),
    what made it (tools), and the sections its writer adds (parity, gate, lowering, tensorrt, ...)."""

    artifact: ArtifactEntry
    io: ModelIO
    source: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    format: str = MANIFEST_FORMAT

    def __post_init__(self) -> None:
        clash = sorted(set(self.sections) & set(_COMMON))
        if clash:
            raise ValueError(f"manifest sections may not be named {', '.join(clash)}")

    def section(self, name: str) -> dict[str, Any]:
        """A writer's section (e.g. "tensorrt"), or an empty dict when this artifact has none."""
        value = self.sections.get(name)
        return value if isinstance(value, dict) else {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"format": self.format, "artifact": self.artifact.to_dict(), "io": self.io.to_dict(),
                "source": self.source, **self.sections, "tools": self.tools}

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest") -> "Manifest":
        """Parse and validate a manifest's JSON; a one-line UserError naming `where` otherwise."""
        fmt = data.get("format") if isinstance(data, dict) else None
        if fmt not in READABLE_FORMATS:
            if isinstance(fmt, str) and fmt.startswith("edgeld-manifest/"):
                raise UserError(f"{where} is {fmt}, newer than this edgeld reads "
                                f"({', '.join(READABLE_FORMATS)}); upgrade edgeld or {REEXPORT}")
            raise UserError(f"{where} is not an edgeld manifest ({MANIFEST_FORMAT}); {REEXPORT}")
        try:
            artifact = ArtifactEntry.from_dict(data.get("artifact"))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where} is incomplete ({exc}); {REEXPORT}") from exc
        try:
            io = ModelIO.from_dict(data.get("io"))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where} is incomplete ('io': {exc}); {REEXPORT}") from exc
        sections = {k: v for k, v in data.items() if k not in _COMMON}
        return cls(artifact, io, dict(data.get("source") or {}), dict(data.get("tools") or {}),
                   sections, MANIFEST_FORMAT)

    @classmethod
    def read(cls, artifact: str | Path, verify_hash: bool = True) -> "Manifest":
        """Load and check the manifest beside an artifact (format, entries, the artifact's hash)."""
        path = manifest_path(artifact)
        if not path.is_file():
            raise UserError(f"no manifest beside {artifact} (expected {path}); "
                            "export the model with `edgeld export` to get one")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UserError(f"manifest {path} is not valid JSON ({exc}); {REEXPORT}") from exc
        manifest = cls.from_dict(data, str(path))
        if verify_hash and manifest.artifact.sha256 != sha256_file(artifact):
            raise UserError(f"{artifact} does not match its manifest's sha256 (modified or "
                            "truncated); re-export it")
        return manifest

    def write(self, artifact: str | Path) -> None:
        """Write this manifest beside `artifact`, atomically."""
        atomic_write_json(manifest_path(artifact), self.to_dict())
