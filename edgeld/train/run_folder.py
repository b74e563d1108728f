"""A training run's folder: refused when it cannot hold the run, and its per-epoch log.

The folder holds `best.safetensors` (the selected model), `last.pt` (everything needed to resume),
`metrics.jsonl` (one line per epoch), `config.json` (the recipe) and `summary.json` (the result).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeld.core.errors import UserError
from edgeld.core.files import atomic_write_bytes, check_output_folder

RESUME_STATE = "last.pt"
LOG = "metrics.jsonl"


def check_run_folder(out: Path, resume: bool) -> None:
    """Refuse, before any work, a folder that cannot be written, a resume with nothing to resume
    from, and a fresh run over a finished one."""
    check_output_folder(out)
    if resume and not (out / RESUME_STATE).is_file():
        raise UserError(f"--resume: no {out / RESUME_STATE} to resume from")
    if not resume and (out / "best.safetensors").exists():
        raise UserError(f"{out} already holds a trained run; use --resume or another --out")


def append_record(out: Path, record: dict[str, Any]) -> None:
    """One epoch's line in the run's log."""
    with open(out / LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def drop_log_lines_after(log: Path, epoch: int) -> None:
    """A kill after an epoch's log line but before its resume state: that epoch runs again.
    A kill in the middle of writing a line leaves half a line: dropped too."""
    if log.is_file():
        lines = [ln for ln in log.read_text(encoding="utf-8").splitlines()
                 if _log_epoch(ln) is not None and _log_epoch(ln) <= epoch]
        # whole or not at all: a second kill here must not lose the epochs already logged
        atomic_write_bytes(log, "".join(ln + "\n" for ln in lines).encode("utf-8"))


def _log_epoch(line: str) -> int | None:
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None
