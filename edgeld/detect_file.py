"""File -> landmarks, decoding only what the detector's chain needs (issue 12, item 2).

A JPEG is decoded at a reduced size (libjpeg's DCT scaling: 1/2 for the shipped cascade, 1/4 for
the student alone on ISBI's 2400x1935 films) chosen by `edgeld.runtime.reduced.max_reduction`;
the one decode serves the first stage and its refiners. Every other file (PNG, BMP, TIFF, 16-bit,
DICOM) is read in full, as `edgeld.data.load_grayscale` reads it. The Detection's landmarks are in
the ORIGINAL file's pixels either way. Torch-free: data + runtime only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edgeld.data.images import ReducedFilm, load_reduced
from edgeld.runtime.detector import Detection, LandmarkDetector
from edgeld.runtime.reduced import detect_reduced, max_reduction


def read_film(detector: LandmarkDetector, path: str | Path, reduced: bool = True) -> ReducedFilm:
    """An image file decoded as far reduced as `detector` allows (`reduced=False`: in full)."""
    return load_reduced(path, (lambda hw: max_reduction(detector, hw)) if reduced else None)


def detect_films(detector: LandmarkDetector, films: Sequence[ReducedFilm],
                 spacings_mm: Sequence[float | Sequence[float] | None] | None = None
                 ) -> list[Detection]:
    """Landmarks of films read by `read_film`, in one forward pass, in each ORIGINAL file's pixels.
    A film's spacing: the one given for it, else the file's own (DICOM), else none."""
    given = list(spacings_mm) if spacings_mm is not None else [None] * len(films)
    spacings = [s if s is not None else f.spacing_mm for s, f in zip(given, films)]
    return detect_reduced(detector, [f.image for f in films], [f.factor for f in films], spacings)


def detect_file(detector: LandmarkDetector, path: str | Path,
                spacing_mm: float | Sequence[float] | None = None, reduced: bool = True
                ) -> Detection:
    """Landmarks of one image file, decoding a JPEG only as far as the detector needs; positions
    in the file's own pixels, spacing `spacing_mm` else the file's own (DICOM) else none."""
    return detect_films(detector, [read_film(detector, path, reduced)], [spacing_mm])[0]
