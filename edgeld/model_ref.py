"""A MODEL argument, resolved once where it enters (CLI or API) into a `ModelRef` that travels on.

MODEL is a built-in name (`isbi2015-student`), a .safetensors checkpoint, an .onnx or an .engine.
`resolve_model` is the only place that tells them apart; everything downstream reads `ref.kind`.
Torch-free and cheap: resolving touches no file, and the metadata (a checkpoint's safetensors
header, an artifact's manifest) is read once, on first use.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from edgeld.core.errors import UserError
from edgeld.models.registry import BUILTIN_MODELS, builtin_path

if TYPE_CHECKING:
    from edgeld.core.contract import ModelIO
    from edgeld.core.manifest import Manifest

ModelKind = Literal["builtin", "checkpoint", "onnx", "engine"]
CHECKPOINT_KINDS = ("builtin", "checkpoint")  # torch weights: trainable, exportable
ARTIFACT_KINDS = ("onnx", "engine")  # exported: a file plus the manifest beside it


@dataclass(frozen=True)
class ModelRef:
    """One resolved MODEL argument: what it is, where its file lies, and (lazily) what it holds."""

    name: str  # as the user gave it: what records and messages show
    kind: ModelKind
    path: Path  # the file: a built-in's shipped weights, else the path given

    @property
    def is_checkpoint(self) -> bool:
        """Torch weights (a built-in model or a .safetensors checkpoint)."""
        return self.kind in CHECKPOINT_KINDS

    @property
    def is_artifact(self) -> bool:
        """An exported .onnx or .engine with its manifest."""
        return self.kind in ARTIFACT_KINDS

    @cached_property
    def manifest(self) -> Manifest:
        """An artifact's manifest (hash verified); a UserError for a checkpoint."""
        if self.is_checkpoint:
            raise UserError(f"{self.name} is a checkpoint, not an exported artifact with a manifest")
        # imported here: the core's manifest loads numpy, and resolving stays light
        from edgeld.core.manifest import Manifest

        if not self.path.is_file():
            raise UserError(f"model file not found: {self.path}")
        return Manifest.read(self.path)

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """A checkpoint's edgeld description, or an artifact's manifest in its JSON form."""
        if self.is_checkpoint:
            return checkpoint_metadata(self.path)
        return self.manifest.to_dict()

    @property
    def io(self) -> ModelIO:
        """The model contract: input, normalization, heatmap, landmarks, orientation reference."""
        if self.is_artifact:
            return self.manifest.io
        from edgeld.core.contract import ModelIO

        if "io" not in self.metadata:
            raise UserError(f"{self.path} is not an edgeld checkpoint")
        try:
            return ModelIO.from_dict(self.metadata["io"])
        except ValueError as exc:
            raise UserError(f"{self.path}: {exc}; retrain or re-save it with this edgeld") from exc

    def __str__(self) -> str:
        return self.name


ModelArg = Union[str, Path, ModelRef]  # a MODEL argument as the API takes it: resolved on entry


def resolve_model(model: ModelArg) -> ModelRef:
    """The ModelRef of a MODEL argument (a ModelRef passes through); a UserError for anything else."""
    if isinstance(model, ModelRef):
        return model
    ref = str(model)
    suffix = Path(ref).suffix.lower()
    if suffix in (".onnx", ".engine"):
        return ModelRef(ref, suffix[1:], Path(ref))  # type: ignore[arg-type]
    if suffix == ".safetensors":
        return ModelRef(ref, "checkpoint", Path(ref))
    if "/" not in ref and "\\" not in ref and not suffix:
        return ModelRef(ref, "builtin", _builtin_weights(ref))
    raise UserError(f"cannot tell what model '{ref}' is: give a built-in name "
                    f"({', '.join(sorted(BUILTIN_MODELS))}), a .safetensors checkpoint, an .onnx or an .engine")


def _builtin_weights(name: str) -> Path:
    path = builtin_path(name)
    if path is None:
        raise UserError(f"unknown model '{name}'; built-in models: {', '.join(sorted(BUILTIN_MODELS))}")
    if not path.is_file():
        raise UserError(f"built-in model '{name}' has no weights in this install ({path})")
    return path


def checkpoint_metadata(path: Path) -> dict[str, Any]:
    """The edgeld description stored in a safetensors checkpoint, read without torch."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            return json.loads((fh.metadata() or {}).get("edgeld", "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable safetensors checkpoint ({exc})") from exc


def rewrite_contract(src: Path, dst: str | Path, **entries: Any) -> None:
    """Copy a safetensors checkpoint with some entries of its model contract replaced (e.g. a
    fitted orientation reference or uncertainty score), atomically; the weights are unchanged.
    Torch-free: safetensors' numpy API reads and writes it."""
    from dataclasses import replace

    from safetensors.numpy import load_file, save

    from edgeld.core.contract import ModelIO
    from edgeld.core.files import atomic_write_bytes

    meta = checkpoint_metadata(Path(src))
    meta["io"] = replace(ModelIO.from_dict(meta["io"]), **entries).to_dict()
    atomic_write_bytes(dst, save(load_file(str(src)), metadata={"edgeld": json.dumps(meta)}))
