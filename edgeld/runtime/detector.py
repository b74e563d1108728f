"""LandmarkDetector: image in, landmarks in pixels and mm out, on any runner."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeld.core.codec import SoftmaxHeatmapCodec
from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError
from edgeld.core.letterbox import Letterbox, preprocess
from edgeld.core.manifest import Manifest
from edgeld.runtime.orientation import (Orientation, OrientationCheck, OrientationReference,
                                        thumbnail)
from edgeld.runtime.quality import Quality, QualitySpec, is_constant
from edgeld.runtime.runners import OnnxRuntimeRunner, Runner
from edgeld.runtime.spacing import (contradicted_spacing, estimate_spacing, from_resampled,
                                   to_refiner_scale)
from edgeld.runtime.uncertainty import UncertaintySpec, far_mass, feature_matrix


@dataclass
class Detection:
    """Landmarks of one image: (K, 2) pixels (x, y) in the original image, confidences in [0, 1]."""

    landmarks_px: np.ndarray
    confidence: np.ndarray
    names: tuple[str, ...]
    spacing_mm: tuple[float, float] | None  # (row, column); None when unknown
    # how the film was oriented when it came in ("upright" or e.g. "mirrored left-right"); the
    # landmarks were found on the upright film and are given in the film's own pixels either way
    orientation: str = "upright"
    # whether the image could be measured at all (runtime/quality.py); an unusable image's
    # record carries no landmarks, only the reason
    quality: Quality = Quality(True, None, 0.0)
    # per landmark: a calibrated score of being more than 4 mm off (runtime/uncertainty.py) and
    # whether it crosses the model's threshold; None when the model carries no fitted score
    uncertainty: np.ndarray | None = None
    uncertain: np.ndarray | None = None
    # (K, F) evidence behind the scores (runtime/uncertainty.py: feature_matrix); not serialized
    evidence: np.ndarray | None = None
    # a film that came without a spacing and whose anatomy says it is far from the refiner's
    # training films' (runtime/spacing.py: estimate_spacing): the square pixel spacing in mm the
    # refiners were run at. An estimate, never used for positions in mm.
    estimated_spacing_mm: float | None = None
    # a film that came with a pixel spacing its anatomy contradicts (runtime/spacing.py:
    # contradicted_spacing): the square spacing in mm the anatomy implies. A warning only: the
    # stated spacing is still the one used, for the refiners and for positions in mm.
    anatomy_spacing_mm: float | None = None

    @property
    def landmarks_mm(self) -> np.ndarray | None:
        """(K, 2) positions in mm from the centre of the image's top-left pixel (pixel centres are
        at integer pixel coordinates), or None without a spacing."""
        if self.spacing_mm is None:
            return None
        return self.landmarks_px * np.array([self.spacing_mm[1], self.spacing_mm[0]])

    def to_dict(self, image: str) -> dict[str, Any]:
        """The `predict --json` record of this image."""
        mm = self.landmarks_mm
        return {
            "image": image,
            "spacing_mm": list(self.spacing_mm) if self.spacing_mm is not None else None,
            "landmarks": [
                {"name": name, "x_px": float(p[0]), "y_px": float(p[1]),
                 "x_mm": float(mm[k, 0]) if mm is not None else None,
                 "y_mm": float(mm[k, 1]) if mm is not None else None,
                 "confidence": float(self.confidence[k]),
                 "uncertainty": float(self.uncertainty[k]) if self.uncertainty is not None else None,
                 "uncertain": bool(self.uncertain[k]) if self.uncertain is not None else None}
                for k, (name, p) in enumerate(zip(self.names, self.landmarks_px))
            ] if self.quality.usable else [],
            "orientation": self.orientation,
            "quality": self.quality.to_dict(),
            "estimated_spacing_mm": self.estimated_spacing_mm,
            "anatomy_spacing_mm": self.anatomy_spacing_mm,
        }


@dataclass(frozen=True)
class _View:
    """One way of looking at a film: the array as the network sees it, its model input and
    letterbox, and the turn from the film as given."""

    image: np.ndarray
    input: np.ndarray
    box: Letterbox
    turn: Orientation


def decode_to_source(logits: np.ndarray, boxes: Sequence[Letterbox], codec: SoftmaxHeatmapCodec
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Heatmap logits (N, K, h, w) to source-image pixels (N, K, 2) and confidences (N, K)."""
    points, confidence = codec.decode(logits)
    source = np.stack([box.inverse_points(p) for box, p in zip(boxes, points)])
    return source, confidence


class LandmarkDetector:
    """Load once, detect many. `LandmarkDetector("student.onnx")` (or a TensorRT `.engine`) reads
    the manifest beside it.

    Thread safety: a detector on an `.onnx` artifact (ONNX Runtime) may be shared by any number of
    threads calling `detect` / `detect_batch` (and a refiner chain of such detectors likewise).
    Each call keeps its state in local variables (the codec and letterboxes are immutable), and
    ONNX Runtime documents concurrent `InferenceSession.run` calls on one session as safe
    ("Multiple threads can invoke the Run() method on the same inference session object", its
    high-level design notes); its Python binding releases the GIL while running, so calls overlap.
    tests/test_api_reliability.py checks that 4 threads sharing one detector get results
    bit-identical to single-threaded ones. Not thread-safe: a TensorRT `.engine` detector (one
    execution context and one CUDA stream; make one detector per thread), and calling
    `runner.deactivate()` while other threads detect. Torch checkpoints are a development path
    and make no promise.
    """

    def __init__(self, artifact: str | Path | None = None, *, runner: Runner | None = None,
                 io: ModelIO | None = None, providers: list[str] | None = None, threads: int = 0,
                 refiner: "LandmarkDetector | None" = None, correct_orientation: bool = True,
                 check_quality: bool = True):
        if artifact is not None:
            artifact = Path(artifact)
            if not artifact.is_file():
                raise UserError(f"model file not found: {artifact}")
            manifest = Manifest.read(artifact)
            io = manifest.io
            if artifact.suffix == ".onnx":
                runner = OnnxRuntimeRunner(artifact, providers=providers, threads=threads, io=io)
            elif artifact.suffix == ".engine":
                from edgeld.runtime.tensorrt_runner import TensorRTRunner

                runner = TensorRTRunner(artifact)
            else:
                raise UserError(f"unsupported artifact type '{artifact.suffix}' (expected .onnx or .engine)")
            self.manifest: Manifest | None = manifest
        elif runner is None or io is None:
            raise ValueError("give an artifact path, or both a runner and its ModelIO")
        else:
            self.manifest = None
        if refiner is not None and (not refiner.io.patch_size or
                                    tuple(refiner.io.landmarks) != tuple(io.landmarks)):
            raise UserError("the refiner must be a refinement-stage model for the same landmarks")
        self.io = io
        self.runner = runner
        self.refiner = refiner
        self.codec = io.codec()
        # films facing the other way or turned are put upright first (models that carry a
        # reference; `correct_orientation=False` measures every film as given)
        reference = (OrientationReference.from_dict(io.orientation)
                     if correct_orientation and io.orientation and not io.patch_size else None)
        self.orientation = reference if reference is not None and reference.usable else None
        # the usability check's thresholds (models fitted with `edgeld orientation fit`); without
        # them every image is measured, as before
        self.quality = (QualitySpec.from_dict(io.quality)
                        if check_quality and io.quality and not io.patch_size else None)
        # `check_quality=False` measures every film as given, with no verdicts: no flags either
        self._uncertainty_spec = self.uncertainty_spec if check_quality else None
        # fitting a score needs the evidence of detectors that have none yet (edgeld uncertainty fit)
        self.record_evidence = False
        self.runner.activate()

    def close(self) -> None:
        """Deactivate this detector's runner and its refiner chain (sessions, GPU buffers)."""
        self.runner.deactivate()
        if self.refiner is not None:
            self.refiner.close()

    def __enter__(self) -> "LandmarkDetector":
        # ready since construction; activating again (a no-op when active) reopens a closed one
        self.runner.activate()
        if self.refiner is not None:
            self.refiner.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    @property
    def names(self) -> tuple[str, ...]:
        return self.io.landmarks

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """A 2D grayscale array to the model's (1, H, W) input and the letterbox used."""
        return preprocess(image, self.io.input_height, self.io.input_width, self.io.mean,
                          self.io.std, self.io.input.reducing_gap)

    def detect(self, image: np.ndarray, spacing_mm: float | Sequence[float] | None = None
               ) -> Detection:
        """Landmarks of one 2D grayscale image (uint8, uint16 or float in [0, 1])."""
        return self.detect_batch([image], [spacing_mm])[0]

    def detect_batch(self, images: Sequence[np.ndarray],
                     spacings_mm: Sequence[float | Sequence[float] | None] | None = None,
                     image_factors: Sequence[int] | None = None) -> list[Detection]:
        """Landmarks of several images in one forward pass. `image_factors`: per image, the
        integer factor by which it is a reduced decode of its file (runtime/reduced.py), for the
        refiners' patch grid; landmarks stay in the given image's pixels either way."""
        if self.io.patch_size:
            raise UserError("this model is a cascade's refinement stage: give it as --refiner of a "
                            "whole-image model")
        if spacings_mm is None:
            spacings_mm = [None] * len(images)
        views, before = zip(*(self._views(_film(img)) for img in images))
        flat = [v for candidates in views for v in candidates]
        logits = self.runner.infer(np.stack([v.input for v in flat]))
        found, confidence, log_z = self.codec.decode_full(logits)
        points = np.stack([v.box.inverse_points(p) for v, p in zip(flat, found)])
        chosen, start = [], 0
        for candidates in views:  # a turn stands only if the network agrees: sharper heatmaps
            scores = confidence[start:start + len(candidates)].mean(axis=1)
            chosen.append(start + int(np.argmax(scores)))  # ties keep the first: the film as given
            start += len(candidates)
        detections = []
        for i, j in enumerate(chosen):
            view, pts, conf = flat[j], points[j], confidence[j]
            quality = self.quality.after(before[i], conf) if self.quality else before[i]
            refined = estimate = doubt = None
            stated = _spacing_pair(spacings_mm[i])
            if self.refiner is not None and quality.usable:  # no patches around no landmarks
                factor = image_factors[i] if image_factors else 1
                size_mm, trained_mm = self._anatomy_reference()
                if stated is None:  # a film without a spacing: ask its anatomy
                    estimate = estimate_spacing(pts, factor, size_mm, trained_mm)
                else:  # a film with one: check it against its anatomy
                    doubt = contradicted_spacing(pts, factor, size_mm, stated)
                refined = self._refine(view, pts, factor,
                                       spacings_mm[i] if estimate is None else estimate)
            scores = self._uncertainty(logits[j], log_z[j], view.box, pts, conf, refined)
            if refined is not None:
                pts, conf = refined
            detections.append(Detection(view.turn.points_to_observed(pts, view.image.shape), conf,
                                        self.names, stated, view.turn.describe(), quality,
                                        *scores, estimated_spacing_mm=estimate,
                                        anatomy_spacing_mm=doubt))
        return detections

    @property
    def uncertainty_spec(self) -> UncertaintySpec | None:
        """The fitted per-landmark score this detector applies: the refiner's (fitted behind a
        first stage) in a cascade, the model's own when it runs alone, else None."""
        spec = self.refiner.io.uncertainty if self.refiner is not None else self.io.uncertainty
        if not spec:
            return None
        spec = UncertaintySpec.from_dict(spec)
        return spec if spec.uses_refiner == (self.refiner is not None) else None

    def _uncertainty(self, logits: np.ndarray, log_z: np.ndarray, box: Letterbox, points: np.ndarray,
                     confidence: np.ndarray, refined: tuple[np.ndarray, np.ndarray] | None
                     ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Per-landmark scores, flags and the (K, F) evidence they come from, for one film
        (first-stage logits (K, h, w) and their normalisers (K,), points in the film's pixels:
        shifts are measured in first-stage input pixels, so a reduced decode changes nothing);
        Nones without a fitted score (unless `record_evidence`) or when a cascade refined
        nothing (an unusable film)."""
        spec = self._uncertainty_spec
        if (spec is None and not self.record_evidence) or (self.refiner is not None and refined is None):
            return None, None, None
        cells = self.codec.to_cells(box.forward_points(points))
        far = far_mass(logits[None], cells[None], log_z=log_z[None])[0]
        refiner_conf = shift = None
        if refined is not None:
            shift = np.hypot(*((refined[0] - points) * box.scale_xy).T)
            refiner_conf = refined[1]
        prior = np.asarray(spec.prior_mm) if spec is not None else np.ones(len(points))
        evidence = feature_matrix(confidence, far, prior, refiner_conf, shift)
        if spec is None:
            return None, None, evidence
        scores = spec.score(evidence)
        return scores, spec.flags(scores), evidence

    def check_orientation(self, image: np.ndarray) -> OrientationCheck | None:
        """How a 2D grayscale film is oriented relative to the model's training films, or None
        when this model carries no orientation reference."""
        if self.orientation is None:
            return None
        return self._check(*self.preprocess(np.asarray(image)))

    def _check(self, x: np.ndarray, box: Letterbox) -> OrientationCheck:
        size = self.orientation.template.shape[0]
        return self.orientation.check(thumbnail(x, box, self.io.mean, self.io.std, size))

    def _views(self, image: np.ndarray) -> tuple[list[_View], Quality]:
        """The film as given and, when its thumbnail says it is turned, the film put upright (the
        network then decides between the two); and whether it looks measurable before the
        network runs (an unusable image is never turned)."""
        given = _View(image, *self.preprocess(image), Orientation())
        check = self._check(given.input, given.box) if self.orientation is not None else None
        correlation = check.score if check is not None else None
        if self.quality is not None:
            before = self.quality.before(image.shape, is_constant(given.input, given.box),
                                         correlation)
        else:
            before = Quality(True, None, round(correlation or 0.0, 4))
        if check is None or check.orientation.is_upright or not before.usable:
            return [given], before
        upright = check.orientation.to_upright(image)
        return [given, _View(upright, *self.preprocess(upright), check.orientation)], before

    def _anatomy_reference(self) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        """(landmark_size_mm, film_spacing_mm) of the first refiner in the chain that records
        both (runtime/spacing.py: estimate_spacing), else Nones."""
        stage = self.refiner
        while stage is not None:
            if stage.io.landmark_size_mm is not None and stage.io.film_spacing_mm is not None:
                return stage.io.landmark_size_mm, stage.io.film_spacing_mm
            stage = stage.refiner
        return None, None

    def _refine(self, view: "_View", points: np.ndarray, image_factor: int,
                spacing: float | Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
        """The refiners on the (upright) film; one of a known spacing other than the refiners'
        training films' is first resampled to one pixel per finest patch pixel, so that patches
        show the anatomy at the scale they were trained on (runtime/spacing.py)."""
        stage, finest = self.refiner, self.refiner.io.patch_factor
        while stage is not None:  # coarse-to-fine chains: resample for the finest stage
            finest, stage = min(finest, stage.io.patch_factor), stage.refiner
        pair = _spacing_pair(spacing)
        if pair is not None and view.turn.turns % 2:
            pair = pair[::-1]  # a quarter turn swaps the film's rows and columns
        image, at, factor, exact = to_refiner_scale(view.image, points, pair, image_factor,
                                                    self.refiner.io.film_spacing_mm, finest)
        if exact is None:  # as given: the very points, so the usual path stays bit-identical
            return self.refiner.refine(view.image, points, image_factor)
        refined, confidence = self.refiner.refine(image, at, factor)
        return from_resampled(refined, exact), confidence

    def refine(self, image: np.ndarray, points_src: np.ndarray, image_factor: int = 1
               ) -> tuple[np.ndarray, np.ndarray]:
        """As a refinement stage: one patch per landmark around `points_src`, each decoded on its
        own landmark's channel; returns refined source pixels (K, 2) and confidences (K,).
        `image_factor`: the image is its file reduced by this factor (points in its pixels)."""
        maps = self.patch_maps(image, points_src, image_factor)
        refined, confidence = maps.decode(self.codec)
        if self.refiner is not None:  # coarse-to-fine: a finer stage after this one
            return self.refiner.refine(image, refined, image_factor)
        return refined, confidence

    def patch_maps(self, image: np.ndarray, points_src: np.ndarray, image_factor: int = 1
                   ) -> "PatchMaps":
        """As a refinement stage: the network's map of each landmark on its own patch, cut
        around `points_src` (this stage alone, not the finer ones after it)."""
        from edgeld.runtime.patches import PatchSpec, patches_around

        if self.io.patch_factor % image_factor:
            raise ValueError(f"a refiner at 1/{self.io.patch_factor} cannot cut patches from an "
                             f"image reduced 1/{image_factor}")
        spec = PatchSpec(self.io.patch_size, self.io.patch_factor // image_factor)
        patches, centres = patches_around(image, points_src, spec, self.io.mean, self.io.std)
        logits = self.runner.infer(patches)
        k = np.arange(len(points_src))
        return PatchMaps(logits[k, k][None], spec, centres)  # (1, K, h, w): patch k on channel k


@dataclass(frozen=True)
class PatchMaps:
    """A refiner's maps of one film: `own` (1, K, h, w), landmark k read on its own patch, and
    where the patches were cut."""

    own: np.ndarray
    spec: Any  # runtime.patches.PatchSpec
    centres: np.ndarray

    def decode(self, codec: SoftmaxHeatmapCodec) -> tuple[np.ndarray, np.ndarray]:
        """Source pixels (K, 2) and confidences (K,) of the maps' peaks, refined as `codec` says."""
        cells, confidence = codec.decode(self.own)
        return self.spec.reduced_to_source(self.spec.patch_origin(self.centres) + cells[0]), confidence[0]


def _film(image: Any) -> np.ndarray:
    """A caller's image as a 2D array, refusing what cannot be measured with a message to act on."""
    if isinstance(image, (str, Path)):
        raise UserError(f"detect takes a 2D grayscale array, not a path: read the file with "
                        f"edgeld.data.load_grayscale({str(image)!r}) first")
    film = np.asarray(image)
    if film.ndim != 2:
        raise UserError(f"expected a 2D grayscale image, got an array of shape {film.shape}; "
                        "read files with edgeld.data.load_grayscale")
    if film.dtype.kind == "f" and not np.isfinite(film).all():
        raise UserError("the image holds NaN or infinite values: no landmarks can be measured on it")
    return film


def _spacing_pair(spacing: float | Sequence[float] | None) -> tuple[float, float] | None:
    if spacing is None:
        return None
    if np.isscalar(spacing):
        return float(spacing), float(spacing)
    row, col = spacing
    return float(row), float(col)
