"""The model contract: what a network takes in, what it emits, and how to read its output.

One `ModelIO` travels with a model from training (checkpoint metadata) through export (the ONNX
graph's metadata and its manifest) to the runtime, always serialized by `to_dict` / `from_dict`.
Standard library only at import time, so `edgeld.config` can take the specs from here.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeld.core.codec import SoftmaxHeatmapCodec


@dataclass(frozen=True)
class InputSpec:
    """How an X-ray becomes the model's input tensor; recorded in every checkpoint and manifest."""

    # 384x320 keeps the 1935x2400 ISBI aspect (1.24) with little padding, at 6.25 source px per input px
    height: int = 384
    width: int = 320
    # fixed intensity normalization of [0, 1] grayscale; X-ray exposure varies, so no per-image stats
    mean: float = 0.5
    std: float = 0.25
    # how the letterbox resamples (core/letterbox.py); contracts written before this field
    # existed read as 3.0, what those models were trained with
    reducing_gap: float = 1.5


@dataclass(frozen=True)
class HeatmapSpec:
    """Heatmap codec: one spatial softmax per landmark at 1/stride of the input."""

    stride: int = 4
    # Gaussian target width in heatmap cells; ~1.5 cells keeps the peak sharp yet learnable
    sigma: float = 1.5
    # how the peak is refined to sub-cell precision (core/codec.py): 0 the parabola vertex, r > 0
    # a local soft-argmax over the cells within r of the peak, chosen by `edgeld decode fit`
    softargmax_radius: int = 0


# the serialized contract is flat, as checkpoints and manifests have always stored it ("io"):
# key -> (part of the contract, field of that part)
_FLAT_KEYS = {"input_height": ("input", "height"), "input_width": ("input", "width"),
              "mean": ("input", "mean"), "std": ("input", "std"),
              "heatmap_stride": ("heatmap", "stride"), "heatmap_sigma": ("heatmap", "sigma"),
              "reducing_gap": ("input", "reducing_gap"),
              "softargmax_radius": ("heatmap", "softargmax_radius")}
# contract entries added later, and what an older contract without them means
_LEGACY_DEFAULTS = {"reducing_gap": 3.0, "softargmax_radius": 0}
REQUIRED_KEYS = (*(k for k in _FLAT_KEYS if k not in _LEGACY_DEFAULTS), "landmarks")


@dataclass(frozen=True)
class ModelIO:
    """The contract between preprocessing, a network and decoding: an input spec, a heatmap spec,
    the landmark channels, the graph's tensor names, and optional entries older models lack."""

    input: InputSpec
    heatmap: HeatmapSpec
    landmarks: tuple[str, ...]
    input_name: str = "image"
    output_name: str = "heatmaps"
    # refinement stage of a cascade: patches of patch_size pixels from the source reduced by
    # patch_factor; 0 for a whole-image model
    patch_size: int = 0
    patch_factor: int = 0
    # an upright-film thumbnail reference the runtime uses to spot mirrored or rotated films;
    # None for models made before it existed. Carried as-is from checkpoint to manifest to runtime.
    orientation: dict[str, Any] | None = None
    # thresholds of the runtime's usability check (runtime/quality.py: QualitySpec.to_dict());
    # None for refiners and for models made before it existed
    quality: dict[str, Any] | None = None
    # the fitted per-landmark "likely far off" score (runtime/uncertainty.py: UncertaintySpec);
    # a first stage's scores it alone, a refiner's scores the cascade behind its first stage
    uncertainty: dict[str, Any] | None = None
    # a refiner's training films' pixel spacing (row, column) in mm: the runtime resamples a film
    # of another known spacing to it before cutting patches, so a patch shows the anatomy at the
    # scale the refiner learnt; None (older refiners, whole-image models): films are taken as
    # they come. Written only when set, so contracts without it keep their bytes.
    film_spacing_mm: tuple[float, float] | None = None
    # a refiner's training films' landmark-set size (mean RMS distance to the centroid, mm) and its
    # relative spread: the runtime estimates the spacing of a film that states none from it
    # (runtime/spacing.py: estimate_spacing). Written only when set, like film_spacing_mm.
    landmark_size_mm: tuple[float, float] | None = None

    def codec(self) -> "SoftmaxHeatmapCodec":
        """The heatmap codec that encodes this model's targets and decodes its output."""
        from edgeld.core.codec import SoftmaxHeatmapCodec  # numpy: loaded on use, see module doc

        return SoftmaxHeatmapCodec((self.input.height, self.input.width), self.heatmap.stride,
                                   self.heatmap.sigma, self.heatmap.softargmax_radius)

    # shorthands for the fields call sites read most
    @property
    def input_height(self) -> int:
        return self.input.height

    @property
    def input_width(self) -> int:
        return self.input.width

    @property
    def mean(self) -> float:
        return self.input.mean

    @property
    def std(self) -> float:
        return self.input.std

    @property
    def heatmap_stride(self) -> int:
        return self.heatmap.stride

    @property
    def heatmap_sigma(self) -> float:
        return self.heatmap.sigma

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form stored in checkpoints ("io"), ONNX metadata and manifests."""
        flat: dict[str, Any] = {key: getattr(getattr(self, part), name)
                                for key, (part, name) in _FLAT_KEYS.items()}
        flat["landmarks"] = list(self.landmarks)
        for f in fields(self):
            if f.name not in ("input", "heatmap", "landmarks"):
                flat[f.name] = getattr(self, f.name)
        for entry in ("film_spacing_mm", "landmark_size_mm"):
            if getattr(self, entry) is None:
                del flat[entry]
            else:
                flat[entry] = list(getattr(self, entry))
        return flat

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelIO":
        """Parse the flat form; a ValueError naming what is missing or malformed. Entries added
        later (orientation, quality, uncertainty) default to None when an older artifact lacks them."""
        if not isinstance(data, dict):
            raise ValueError("the model contract is not a JSON object")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ValueError(f"the model contract lacks {', '.join(missing)}")
        parts: dict[str, dict[str, Any]] = {"input": {}, "heatmap": {}}
        for key, (part, name) in _FLAT_KEYS.items():
            parts[part][name] = data.get(key, _LEGACY_DEFAULTS.get(key))
        optional = {f.name: data[f.name] for f in fields(cls)
                    if f.name not in ("input", "heatmap", "landmarks") and f.name in data}
        for entry in ("orientation", "quality", "uncertainty"):
            if optional.get(entry) is not None and not isinstance(optional[entry], dict):
                raise ValueError(f"the model contract's {entry} is not a JSON object")
        for entry in ("film_spacing_mm", "landmark_size_mm"):
            if optional.get(entry) is not None:
                pair = optional[entry]
                if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and
                        all(isinstance(v, (int, float)) and v > 0 for v in pair)):
                    raise ValueError(f"the model contract's {entry} is not two positive numbers")
                optional[entry] = (float(pair[0]), float(pair[1]))
        return cls(InputSpec(**parts["input"]), HeatmapSpec(**parts["heatmap"]),
                   tuple(data["landmarks"]), **optional)
