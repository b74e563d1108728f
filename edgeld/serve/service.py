"""One detector, opened once, shared by every request of a service (HTTP or DICOM).

It knows what it runs (the `info --json` records and sha256 of each stage, for `/v1/model` and the
Structured Report), reads uploaded bytes with the same readers and limits as `edgeld predict`, and
answers with the `predict --json` record.
"""
from __future__ import annotations

import os
import tempfile
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgeld import __version__
from edgeld.core.errors import UserError
from edgeld.data.images import ReducedFilm
from edgeld.detect_file import detect_films, read_film
from edgeld.info import model_info
from edgeld.load import open_detector
from edgeld.model_ref import ModelRef, resolve_model
from edgeld.runtime import LandmarkDetector
from edgeld.runtime.detector import Detection


@dataclass(frozen=True)
class Stage:
    """One model of the cascade as a report names it."""

    name: str
    sha256: str


def stages_of(infos: Sequence[dict[str, Any]]) -> tuple[Stage, ...]:
    """The stages of a cascade from the `info --json` records of its models."""
    return tuple(Stage(i["name"], i["sha256"]) for i in infos)


def cascade_name(stages: Sequence[Stage]) -> str:
    """The cascade as `predict` names it: "isbi2015-student + isbi2015-refiner"."""
    return " + ".join(stage.name for stage in stages)


class DetectionService:
    """Open MODEL (and its refiners) once; `detect` may be called from many threads."""

    def __init__(self, model: str | ModelRef, refiners: Sequence[str | ModelRef] = ()):
        refs = [resolve_model(model), *(resolve_model(r) for r in refiners)]
        self.detector: LandmarkDetector = open_detector(refs[0], refiner=refs[1:])
        infos = [model_info(ref) for ref in refs]
        self.info: dict[str, Any] = {**infos[0], "refiners": infos[1:]}
        self.stages = stages_of(infos)
        # ONNX Runtime sessions may be run by many threads at once (see LandmarkDetector); the
        # torch runner of a checkpoint makes no such promise, so its calls take turns
        concurrent = all(ref.kind == "onnx" for ref in refs)
        self._turns = nullcontext() if concurrent else threading.Lock()

    @property
    def name(self) -> str:
        return cascade_name(self.stages)

    @property
    def version(self) -> str:
        return __version__

    def detect(self, image: np.ndarray, spacing_mm: tuple[float, float] | None) -> Detection:
        with self._turns:
            return self.detector.detect(image, spacing_mm)

    def detect_bytes(self, data: bytes, label: str, spacing_mm: tuple[float, float] | None
                     ) -> dict[str, Any]:
        """The `predict --json` record of an uploaded image file (any format predict reads),
        decoded as `predict` decodes it: a JPEG only as far as the model chain needs.

        A given spacing wins over the file's own (DICOM tags), as `predict --spacing` does.
        Raises UserError for bytes that are no readable image."""
        film = read_upload(data, label, self.detector)
        used, source = ((spacing_mm, "spacing_mm") if spacing_mm
                        else (film.spacing_mm, film.spacing_source))
        with self._turns:
            detection = detect_films(self.detector, [film], [used])[0]
        record = detection.to_dict(label)
        record.update(spacing_source=source, units="mm" if used is not None else "px")
        return record

    def close(self) -> None:
        self.detector.close()


def read_upload(data: bytes, label: str, detector: LandmarkDetector) -> ReducedFilm:
    """Image bytes through the file readers (same formats, limits, messages and reduced JPEG
    decoding as `predict`).

    The readers take paths, and a private temporary file is the one way to give them every format
    (DICOM and Pillow's) without a second decoding path; messages name `label`, not that file."""
    fd, tmp = tempfile.mkstemp(prefix="edgeld-upload-", suffix=".img")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            return read_film(detector, tmp)
        except UserError as exc:
            raise UserError(str(exc).replace(tmp, label)) from None
    finally:
        os.unlink(tmp)
