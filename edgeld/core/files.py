"""Atomic file writes, output-location checks and sha256 hashing. Standard library only."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edgeld.core.errors import UserError


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks."""
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
    """Write `data` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
