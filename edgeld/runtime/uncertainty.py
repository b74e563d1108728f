"""Which landmarks are likely far off: a calibrated score per landmark and an `uncertain` flag.
numpy, no torch.

The score is a logistic model of "this landmark is more than 4 mm from the reference", fitted on
the model's own validation films (never on films it trained on, never on test films) from evidence
the cascade has anyway:

- the first stage's confidence (heatmap mass near its peak) and the mass it puts far from the peak
  (more than FAR_CELLS cells away: a second candidate structure);
- with a refiner, the refiner's confidence and how far it moved the point (a first-stage point the
  refiner had to drag far was probably on the wrong structure);
- a per-landmark prior: how much the dataset's two annotators disagree on that landmark on the
  training films (gonion, porion and orbitale are hard for people too).

A landmark is flagged when its score exceeds the threshold that flags `TARGET_FLAG_RATE` of the
validation landmarks. The model travels in the contract of the stage whose output it scores: a
first stage (`io.uncertainty`) for a first stage alone, a refiner for the cascade behind it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

FAR_MM = 4.0  # what "far off" means: the SDR threshold beyond which a landmark is clinically wrong
FAR_CELLS = 3.0  # heatmap mass beyond this many cells from the peak counts as "elsewhere"
TARGET_FLAG_RATE = 0.10  # share of validation landmarks the threshold flags
STAGE1_FEATURES = ("stage1_doubt", "far_mass", "prior")
CASCADE_FEATURES = ("stage1_doubt", "far_mass", "refiner_doubt", "refiner_shift", "prior")
L2 = 10.0  # ridge on standardised features: a few hundred validation landmarks, a few dozen misses


def far_mass(logits: np.ndarray, cells: np.ndarray, radius: float = FAR_CELLS,
             log_z: np.ndarray | None = None) -> np.ndarray:
    """Softmax mass of each (N, K, h, w) logit map farther than `radius` cells from the decoded
    (N, K, 2) cell position (x, y): near 0 for one clear peak, large when the map hesitates.
    The near mass is summed in a window only; `log_z` (N, K), the maps' normalisers as the
    codec's `decode_full` returns them, saves the one pass over whole maps."""
    n, k, h, w = logits.shape
    if log_z is None:
        flat = logits.reshape(n, k, h * w)
        peak = flat.max(axis=2)
        log_z = peak.astype(np.float64) + np.log(
            np.exp(flat - peak[..., None]).sum(axis=2, dtype=np.float64))
    offsets = np.arange(-int(np.ceil(radius)) - 1, int(np.ceil(radius)) + 2)
    cx, cy = cells[..., 0].astype(np.float64), cells[..., 1].astype(np.float64)
    xs = np.rint(cx)[..., None, None] + offsets[None, :]  # (N, K, 1, W)
    ys = np.rint(cy)[..., None, None] + offsets[:, None]  # (N, K, W, 1)
    near = (((xs - cx[..., None, None]) ** 2 + (ys - cy[..., None, None]) ** 2 <= radius ** 2)
            & (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h))
    nn, kk = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    values = logits[nn[..., None, None], kk[..., None, None],
                    np.clip(ys, 0, h - 1).astype(np.intp), np.clip(xs, 0, w - 1).astype(np.intp)]
    mass = np.where(near, np.exp(values - log_z[..., None, None]), 0.0).sum(axis=(-2, -1))
    return np.clip(1.0 - mass, 0.0, 1.0)


def feature_matrix(stage1_confidence: np.ndarray, far: np.ndarray, prior_mm: np.ndarray,
                   refiner_confidence: np.ndarray | None = None,
                   refiner_shift_px: np.ndarray | None = None) -> np.ndarray:
    """(K, F) features of one film's landmarks, in the order of STAGE1_FEATURES, or of
    CASCADE_FEATURES when the refiner's evidence is given. Shifts are in first-stage input pixels,
    so the features do not depend on a film's size or spacing."""
    cols = [np.log1p(1e-3 - np.asarray(stage1_confidence, dtype=np.float64)), np.asarray(far, np.float64)]
    if refiner_confidence is not None:
        cols += [np.log1p(1e-3 - np.asarray(refiner_confidence, dtype=np.float64)),
                 np.log(np.asarray(refiner_shift_px, dtype=np.float64) + 0.1)]
    cols.append(np.log(np.maximum(np.asarray(prior_mm, dtype=np.float64), 0.05)))
    return np.stack(cols, axis=-1)


@dataclass(frozen=True)
class UncertaintySpec:
    """A fitted score: standardise, weigh, add the bias, squash; flag above `threshold`."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    prior_mm: tuple[float, ...]  # per landmark, the annotators' mean disagreement
    fitted_on: str = ""

    @property
    def uses_refiner(self) -> bool:
        return "refiner_doubt" in self.features

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UncertaintySpec":
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("features", "mean", "scale", "weights", "prior_mm"):
            values[key] = tuple(values[key])
        return cls(**values)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Probability-like score in (0, 1) per landmark of a (..., F) feature array."""
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.weights) + self.bias)))

    def flags(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) > self.threshold


def fit_uncertainty(features: np.ndarray, far_off: np.ndarray, names: tuple[str, ...],
                    prior_mm: np.ndarray, fitted_on: str,
                    flag_rate: float = TARGET_FLAG_RATE) -> UncertaintySpec:
    """Ridge logistic regression (Newton steps) of `far_off` (N*K,) on `features` (N*K, F), and
    the threshold that flags `flag_rate` of these landmarks."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(far_off, dtype=np.float64)
    if not 0 < y.sum() < len(y):
        raise ValueError("fitting needs landmarks both within and beyond "
                         f"{FAR_MM:g} mm of the reference; these films have "
                         f"{int(y.sum())} of {len(y)} beyond")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = np.column_stack([(x - mean) / scale, np.ones(len(x))])
    w = np.zeros(z.shape[1])
    ridge = np.diag([L2] * (z.shape[1] - 1) + [0.0])  # the bias is not shrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        step = np.linalg.solve((z * (p * (1 - p))[:, None]).T @ z + ridge,
                               z.T @ (p - y) + ridge @ w)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    spec = UncertaintySpec(tuple(names), tuple(mean.tolist()), tuple(scale.tolist()),
                           tuple(w[:-1].tolist()), float(w[-1]), 0.0,
                           tuple(float(v) for v in prior_mm), fitted_on)
    threshold = float(np.quantile(spec.score(x), 1.0 - flag_rate))
    return UncertaintySpec(**{**asdict(spec), "threshold": threshold})
