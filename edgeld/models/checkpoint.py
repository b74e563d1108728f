"""Model checkpoints as safetensors: weights plus a JSON description, never pickle."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from edgeld.config import ModelSpec, from_dict, to_dict
from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError
from edgeld.core.files import atomic_write_bytes, make_parent_folder
from edgeld.models.landmarknet import LandmarkNet

CHECKPOINT_FORMAT = "edgeld-checkpoint/1"


def save_checkpoint(path: str | Path, model: LandmarkNet, io: ModelIO, extra: dict[str, Any],
                    storage_dtype: torch.dtype | None = None) -> None:
    """Write weights and description atomically (temp file in the same folder, then rename).

    `storage_dtype=torch.float16` halves the file (shipped teachers); loading casts back to float32.
    """
    from edgeld.models.cost import count_macs, count_params

    path = Path(path)
    make_parent_folder(path)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "arch": "landmarknet",
        "model": to_dict(model.spec),
        "io": io.to_dict(),
        "params": count_params(model),
        "macs": count_macs(model, io.input_height, io.input_width),
        **extra,
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if storage_dtype is not None:
        tensors = {k: v.to(storage_dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        meta["storage_dtype"] = str(storage_dtype).removeprefix("torch.")
    atomic_write_bytes(path, save(tensors, metadata={"edgeld": json.dumps(meta)}))


def load_checkpoint(path: str | Path) -> tuple[LandmarkNet, ModelIO, dict[str, Any]]:
    """A model in eval mode, its ModelIO and its description, from a safetensors checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("edgeld", "{}"))
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable safetensors checkpoint ({exc})") from exc
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not an edgeld checkpoint (no '{CHECKPOINT_FORMAT}' metadata)")
    try:
        io = ModelIO.from_dict(meta.get("io"))
    except ValueError as exc:
        raise UserError(f"{path}: {exc}; retrain or re-save it with this edgeld") from exc
    model = LandmarkNet(from_dict(ModelSpec, meta["model"]))
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in tensors.items()})
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not match the described architecture") from exc
    return model.eval(), io, meta


def shrink_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Copy a checkpoint with float16 storage (e.g. to ship a teacher inside the package)."""
    model, io, meta = load_checkpoint(src)
    extra = {k: v for k, v in meta.items()
             if k not in ("format", "arch", "model", "io", "params", "macs")}
    save_checkpoint(dst, model, io, extra, storage_dtype=torch.float16)
