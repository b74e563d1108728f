"""A cascade's refinement stage as a training role: one tiny network reads a patch around any
landmark and re-localizes it on that landmark's channel.

Training patches are centred on the ground truth moved by a random offset that mimics a first
stage's errors; model selection runs the whole cascade (the given first stage, then this refiner)
on the validation images held out from train. Everything else (optimizer, schedule, resume, DDP,
device, logs, checkpoints) is the loop every role shares, `edgeld.train.loop`.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgeld import __version__
from edgeld.config import ModelSpec, TrainSpec, to_dict
from edgeld.core.contract import HeatmapSpec, InputSpec, ModelIO
from edgeld.core.errors import UserError
from edgeld.data import LandmarkDataset, Sample, open_dataset
from edgeld.data.images import load_grayscale
from edgeld.metrics import radial_errors_mm, sdr_percent
from edgeld.model_ref import ModelArg, resolve_model
from edgeld.models.landmarknet import LandmarkNet
from edgeld.models.runner import TorchRunner
from edgeld.runtime import LandmarkDetector
from edgeld.runtime.patches import PatchSpec, reduce_image
from edgeld.runtime.spacing import training_landmark_size
from edgeld.torchside.patch_dataset import PatchDataset
from edgeld.train.loop import RoleSetup, RunContext, run_training_loop, split_train_val, start_run
from edgeld.train.run_folder import check_run_folder
from edgeld.train.tasks import RefinerTask

# patches are cheap: larger batches, fewer epochs than the whole-image recipe; rotate_deg and
# scale_range turn each patch about its centre (off unless asked: `--rotate`, `--scale-range`)
REFINER_RECIPE = TrainSpec(epochs=60, batch_size=32, warmup_epochs=1, rotate_deg=0.0, scale_range=0.0)
# the deepest stage sees 2x2 cells of a 64 px patch: 48 channels there (not 64) keep the student
# + refiner pair within the 1.0 M-parameter budget of the deployed cascade
REFINER_MODEL = ModelSpec(widths=(16, 24, 32, 48, 48), depths=(1, 1, 1, 1), decoder_width=32)
# the patch's heatmap: stride 4, sigma 1.5 cells, as the whole-image models'
REFINER_HEATMAP = HeatmapSpec()
# first-stage errors are ~2 mm typical, with a tail past 4 mm; in reduced pixels (0.2 mm) that is a
# jitter of sigma 8 px clipped at 20 px, inside a 64 px (12.8 mm) patch
JITTER_SIGMA_PX = 8.0
JITTER_MAX_PX = 20.0


class CascadeValidation:
    """Cascade MRE (mm) and SDR on held-out images: the first stage's points, refined by `model`.

    The first stage's points are computed once, on the first call (rank 0 alone validates)."""

    def __init__(self, first: LandmarkDetector, images: list[np.ndarray], refs: np.ndarray,
                 spacing: np.ndarray, model: LandmarkNet, io: ModelIO):
        self.first, self.images, self.refs, self.spacing = first, images, refs, spacing
        self.model, self.io = model, io
        self.stage1_points: np.ndarray | None = None
        self.stage1_mre = float("nan")

    def __call__(self) -> dict[str, float]:
        if not self.images:  # --val-count 0: the loop keeps the last epoch
            return {}
        if self.stage1_points is None:
            first = self.first.detect_batch(self.images)
            self.stage1_points = np.stack([d.landmarks_px for d in first])
            errors = radial_errors_mm(self.stage1_points, self.refs, self.spacing)
            self.stage1_mre = float(errors.mean())
        device = next(self.model.parameters()).device  # validate where the model trains
        refiner = LandmarkDetector(runner=TorchRunner(self.model, device=str(device)), io=self.io)
        refined = np.stack([refiner.refine(img, p)[0]
                            for img, p in zip(self.images, self.stage1_points)])
        errors = radial_errors_mm(refined, self.refs, self.spacing)
        return {"val_mre_mm": float(errors.mean()), "val_sdr_2mm": sdr_percent(errors)["2.0"],
                "val_stage1_mre_mm": self.stage1_mre}


def _split_like_stage1(samples, stage1: str, spec: TrainSpec) -> tuple[list[int], list[int]]:
    """The first stage's own validation images when its checkpoint names them, so the cascade is
    never selected on images the first stage was trained on; else a seeded carve-out."""
    from edgeld.model_ref import resolve_model

    if spec.val_count == 0:  # the final run: every image, the recipe's epoch count
        return split_train_val(len(samples), 0, spec.seed)
    ref = resolve_model(stage1)
    training = ref.metadata.get("training", {}) if ref.is_checkpoint else {}
    names = training.get("val_images", [])
    ids = [s.image_id for s in samples]
    if training and not names and spec.val_count:
        raise UserError(f"{stage1} trained on every image, so no cascade can be validated behind "
                        "it: train the refiner with --val-count 0 and a fixed --epochs")
    if names and set(names) <= set(ids):
        val = sorted(ids.index(n) for n in names)
        return [i for i in range(len(ids)) if i not in set(val)], val
    return split_train_val(len(samples), spec.val_count, spec.seed)


def train_refiner(data_dir: str, out_dir: str, stage1: str, spec: TrainSpec = REFINER_RECIPE,
                  patch: PatchSpec = PatchSpec(), progress: bool = True, resume: bool = False,
                  device: str = "cpu", reference: str | None = None) -> dict[str, Any]:
    """Train a refiner; select it on the cascade's validation MRE with `stage1` in front.
    `reference`: the annotation trained toward and selected on (default the dataset's).

    `resume` continues an interrupted run in `out_dir`; `device` and torchrun work as for the
    other roles (see `edgeld.train.trainer.train`)."""
    from edgeld.load import open_detector

    out = Path(out_dir)
    check_run_folder(out, resume)
    dataset = open_dataset(data_dir)
    samples = dataset.split("train")
    reference = dataset.training_reference(samples, reference)
    split = _split_like_stage1(samples, stage1, spec)
    first = open_detector(stage1)  # before seeding: the recipe's stream starts after it
    if tuple(first.names) != tuple(dataset.landmark_names):
        raise UserError(f"first stage {stage1} predicts other landmarks than {data_dir} holds")
    run = start_run(spec, device)
    progress = progress and run.ddp.is_main
    setup = _refiner_setup(dataset, str(data_dir), samples, split, first, stage1, spec, patch,
                           run, progress, reference)
    return run_training_loop(setup, spec, out, run, resume, progress)


def common_spacing(samples: list[Sample]) -> tuple[float, float] | None:
    """The (row, column) pixel spacing every training film shares, recorded in the refiner's
    contract (the runtime resamples films of another spacing to it); None when a film has none
    or they differ."""
    spacings = {s.spacing_mm for s in samples}
    if len(spacings) != 1 or None in spacings:
        return None
    return next(iter(spacings))


def landmark_sizes(samples: list[Sample], fit_idx: list[int], spacing: tuple[float, float] | None,
                   reference: str) -> tuple[float, float] | None:
    """The training films' landmark-set size in mm and its relative spread, recorded so that the
    runtime can estimate the spacing of a film that states none; None without a common spacing."""
    if spacing is None:
        return None
    xy_mm = np.array([spacing[1], spacing[0]])
    return training_landmark_size([samples[i].reference(reference) * xy_mm for i in fit_idx])


def recorded_landmark_size(model: ModelArg, data_dir: str) -> tuple[float, float] | None:
    """What refiner training now records as `landmark_size_mm`, for a refiner MODEL trained before
    it did: from the training films it trained on (data_dir's train split less the validation
    films its checkpoint names)."""
    held = set(resolve_model(model).metadata.get("training", {}).get("val_images", []))
    dataset = open_dataset(data_dir)
    samples = [s for s in dataset.split("train") if s.image_id not in held]
    return landmark_sizes(samples, list(range(len(samples))), common_spacing(samples),
                          dataset.default_reference)


def _refiner_setup(dataset: LandmarkDataset, data_dir: str, samples: list[Sample],
                   split: tuple[list[int], list[int]], first: LandmarkDetector, stage1: str,
                   spec: TrainSpec, patch: PatchSpec, run: RunContext, progress: bool,
                   reference: str) -> RoleSetup:
    """Jittered patches from reduced images; the refiner network; cascade validation."""
    fit_idx, val_idx = split
    mean, std = first.io.mean, first.io.std  # the refiner reads pixels as the first stage does
    images = [load_grayscale(s.path) for s in tqdm(samples, desc="loading images",
                                                    disable=not progress, leave=False)]
    reduced = [reduce_image(img, patch.factor) for img in images]
    truth = [patch.source_to_reduced(s.reference(reference)) for s in samples]
    spacing = common_spacing(samples)
    io = ModelIO(InputSpec(patch.size, patch.size, mean, std), REFINER_HEATMAP,
                 dataset.landmark_names, patch_size=patch.size, patch_factor=patch.factor,
                 film_spacing_mm=spacing, landmark_size_mm=landmark_sizes(samples, fit_idx, spacing, reference))
    codec = io.codec()
    train_set = PatchDataset([reduced[i] for i in fit_idx], [truth[i] for i in fit_idx], patch,
                             codec, mean, std, spec.seed + run.ddp.rank,
                             JITTER_SIGMA_PX, JITTER_MAX_PX, spec.rotate_deg, spec.scale_range)
    model = LandmarkNet(replace(REFINER_MODEL, num_landmarks=len(dataset.landmark_names)))
    validation = CascadeValidation(
        first, [images[i] for i in val_idx],
        np.array([samples[i].reference(reference) for i in val_idx]).reshape(
            len(val_idx), len(dataset.landmark_names), 2),
        np.array([samples[i].spacing_mm or (1.0, 1.0) for i in val_idx]), model, io)
    recipe = {"role": "refiner", "stage1": stage1, "data": data_dir, "dataset": dataset.name,
              "reference": reference,
              "train": to_dict(spec), "patch": {"size": patch.size, "factor": patch.factor},
              "jitter_px": [JITTER_SIGMA_PX, JITTER_MAX_PX], "model": to_dict(model.spec),
              "val_images": [samples[i].image_id for i in val_idx], "edgeld": __version__}
    return RoleSetup(RefinerTask(model), train_set, validation, io, recipe)
