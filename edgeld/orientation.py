"""Fit a model's upright-film orientation reference on a dataset split and store it in a checkpoint.

Models trained before the reference existed get it this way; the weights are copied unchanged.
Torch-free: safetensors' numpy API reads and writes the checkpoint.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from edgeld.data.datasets import open_dataset
from edgeld.data.images import load_grayscale
from edgeld.core.errors import UserError
from edgeld.model_ref import checkpoint_metadata
from edgeld.core.contract import ModelIO
from edgeld.core.files import make_parent_folder
from edgeld.runtime.orientation import OrientationReference, fit_reference


def fit_on_split(io: ModelIO, data_dir: str, split: str) -> OrientationReference:
    """The reference of the films of one split, preprocessed for a model with this contract."""
    dataset = open_dataset(data_dir)
    samples = dataset.split(split)
    films = (load_grayscale(s.path) for s in samples)
    return fit_reference(films, io.input_height, io.input_width, io.mean, io.std,
                         fitted_on=f"{dataset.name} {split} ({len(samples)} films)")


def attach_to_checkpoint(src: str | Path, dst: str | Path, reference: OrientationReference) -> None:
    """Copy a safetensors checkpoint with the reference in its model contract (atomically)."""
    from safetensors.numpy import load_file, save_file

    meta = checkpoint_metadata(Path(src))
    if meta.get("io", {}).get("patch_size"):
        raise UserError(f"{src} is a refinement stage: it reads patches around landmarks found on "
                        "an upright film and needs no orientation reference")
    meta["io"] = replace(ModelIO.from_dict(meta["io"]), orientation=reference.to_dict()).to_dict()
    tensors = load_file(str(src))
    dst = Path(dst)
    make_parent_folder(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.fchmod(fd, 0o644)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"edgeld": json.dumps(meta)})
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
