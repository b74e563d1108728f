"""Whole-image heatmap roles (student, teacher, reference): their models, objectives and validation.

`train` builds a role's setup and runs it through the one loop every role shares
(`edgeld.train.loop`); the run folder is described in `edgeld.train.run_folder`.
"""
from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeld import __version__
from edgeld.config import HeatmapSpec, InputSpec, ModelSpec, TrainSpec, to_dict
from edgeld.core.codec import SoftmaxHeatmapCodec
from edgeld.core.contract import ModelIO
from edgeld.core.letterbox import normalize
from edgeld.core.errors import UserError
from edgeld.data import LandmarkDataset, Sample, open_dataset
from edgeld.data.augment import elastic_limit_px
from edgeld.metrics import radial_errors_mm, sdr_percent
from edgeld.model_ref import ModelArg, resolve_model
from edgeld.models.landmarknet import LandmarkNet
from edgeld.runtime.detector import decode_to_source
from edgeld.runtime.orientation import OrientationReference, reference_from_thumbnails, thumbnail
from edgeld.torchside.heatmap_dataset import CachedSample, HeatmapDataset, cache_samples
# resolve_device, split_train_val and lr_factor lived here once; importable from here still
from edgeld.train.distributed import resolve_device  # noqa: F401
from edgeld.train.loop import (RoleSetup, RunContext, lr_factor, run_training_loop,  # noqa: F401
                               split_train_val, start_run)
from edgeld.train.run_folder import check_run_folder
from edgeld.train.tasks import HeatmapTask, MultiTaskTask

ROLE_MODELS = {
    "student": ModelSpec(),
    # wider and deeper: the reference the student is later distilled from
    "teacher": ModelSpec(widths=(32, 64, 96, 160, 256), depths=(2, 2, 2, 2), decoder_width=96),
    # the heavy peer of published work, timed and trained beside ours: a ResNet-34 encoder
    # (3-4-6-3 basic blocks, 64-512 channels) with a 256-wide FPN decoder, stride-4 heatmaps
    # as SimpleBaseline/HRNet emit them
    "reference": ModelSpec(widths=(64, 64, 128, 256, 512), depths=(3, 4, 6, 3), decoder_width=256),
}


# multi-task weights: offset L1 is in heatmap cells (~0.1-1), reconstruction L1 in normalized
# intensity (~0.1-0.5); both sit near the heatmap KL's late-training scale (~0.1)
AUX_WEIGHTS = {"offset": 1.0, "reconstruction": 0.5}


def make_task(net: LandmarkNet, spec: TrainSpec) -> torch.nn.Module:
    """The objective: plain heatmaps, or multi-task when an auxiliary weight is set."""
    if spec.offset_weight > 0 or spec.reconstruction_weight > 0:
        return MultiTaskTask(net, spec.offset_weight, spec.reconstruction_weight)
    return HeatmapTask(net)


@torch.no_grad()
def validate(model: LandmarkNet, cached: list[CachedSample], codec: SoftmaxHeatmapCodec,
             inputs: torch.Tensor, reference: str, batch_size: int) -> dict[str, float]:
    """MRE (mm) and SDR of the model on cached validation images, in original pixels."""
    model.eval()
    device = next(model.parameters()).device
    logits = np.concatenate([model(inputs[i:i + batch_size].to(device)).float().cpu().numpy()
                             for i in range(0, len(inputs), batch_size)])
    points, _ = decode_to_source(logits, [c.box for c in cached], codec)
    refs = np.stack([c.sample.reference(reference) for c in cached])
    spacing = np.array([c.sample.spacing_mm or (1.0, 1.0) for c in cached])
    errors = radial_errors_mm(points, refs, spacing)
    return {"val_mre_mm": float(errors.mean()), "val_sdr_2mm": sdr_percent(errors)["2.0"]}


def load_teacher(model: ModelArg, io: ModelIO) -> tuple[LandmarkNet, str]:
    """A frozen teacher for distillation, checked against the student's input and landmarks."""
    from edgeld.models.checkpoint import load_checkpoint

    ref = resolve_model(model)
    if not ref.is_checkpoint:
        raise UserError(f"--teacher must be a built-in model or a .safetensors checkpoint, not {ref}")
    path = ref.path
    teacher, teacher_io, _ = load_checkpoint(path)
    if (teacher_io.input_height, teacher_io.input_width, tuple(teacher_io.landmarks)) != (
            io.input_height, io.input_width, tuple(io.landmarks)):
        raise UserError(f"teacher {ref} takes {teacher_io.input_height}x{teacher_io.input_width} "
                        f"input with {len(teacher_io.landmarks)} landmarks; the student needs "
                        f"{io.input_height}x{io.input_width} with {len(io.landmarks)}")
    if teacher_io.heatmap_stride != io.heatmap_stride:
        raise UserError(f"teacher {ref} has heatmap stride {teacher_io.heatmap_stride}, the student "
                        f"{io.heatmap_stride}")
    from edgeld.core.files import sha256_file

    return teacher, sha256_file(path)




def train(data_dir: str, out_dir: str, role: str = "student", spec: TrainSpec = TrainSpec(),
          input_spec: InputSpec = InputSpec(), heatmap_spec: HeatmapSpec = HeatmapSpec(),
          resume: bool = False, progress: bool = True, kd: str = "none",
          teacher: str | None = None, device: str = "cpu", reference: str | None = None
          ) -> dict[str, Any]:
    """Train one model; returns the best epoch's validation metrics and the checkpoint path.

    `reference`: the annotation trained toward and selected on (an annotator, or "mean");
    default the dataset's.

    With `kd` other than "none", the student learns from the frozen `teacher` as well (see
    edgeld.distill.task). `device` changes where the arithmetic runs, not the recipe: the same
    data order, augmentation and schedule (CUDA kernels are not bit-identical to CPU ones)."""
    _check_options(role, spec, kd, teacher)
    limit = elastic_limit_px(input_spec.height, input_spec.width)
    if spec.elastic_px >= limit:
        raise UserError(f"--elastic {spec.elastic_px:g} would fold a {input_spec.height}x"
                        f"{input_spec.width} input: keep it under {limit:.1f} pixels")
    out = Path(out_dir)
    check_run_folder(out, resume)
    dataset = open_dataset(data_dir)
    samples = dataset.split("train")
    reference = dataset.training_reference(samples, reference)
    split = split_train_val(len(samples), spec.val_count, spec.seed)
    run = start_run(spec, device)
    progress = progress and run.ddp.is_main
    setup = _heatmap_setup(dataset, str(data_dir), samples, split, role, spec, input_spec,
                           heatmap_spec, kd, teacher, run, progress, reference)
    return run_training_loop(setup, spec, out, run, resume, progress)


def _check_options(role: str, spec: TrainSpec, kd: str, teacher: str | None) -> None:
    if role not in ROLE_MODELS:
        raise UserError(f"--role must be one of {', '.join(ROLE_MODELS)} here (got {role!r}); "
                        "a refiner trains with edgeld.train.refiner.train_refiner")
    if (kd == "none") != (teacher is None):
        raise UserError("--kd METHOD and --teacher MODEL go together (or neither)")
    if kd != "none" and role != "student":
        raise UserError("distillation trains a student: use --role student with --kd")
    if kd != "none" and (spec.offset_weight or spec.reconstruction_weight):
        raise UserError("--aux (multi-task) and --kd are separate recipes; choose one")


def _orientation_reference(fit: list[CachedSample], input_spec: InputSpec, dataset: str
                           ) -> OrientationReference:
    """What the training films look like upright, for the runtime's orientation check: their
    thumbnails made from the letterboxed images exactly as the runtime makes them."""
    mean, std = input_spec.mean, input_spec.std
    thumbs = (thumbnail(normalize(c.image, mean, std)[None], c.box, mean, std) for c in fit)
    return reference_from_thumbnails(thumbs, f"{dataset} training images ({len(fit)} films)")


def _heatmap_setup(dataset: LandmarkDataset, data_dir: str, samples: list[Sample],
                   split: tuple[list[int], list[int]], role: str, spec: TrainSpec,
                   input_spec: InputSpec, heatmap_spec: HeatmapSpec, kd: str, teacher: str | None,
                   run: RunContext, progress: bool, reference: str) -> RoleSetup:
    """Letterboxed images with augmentation; the role's model and objective; validation MRE."""
    h, w = input_spec.height, input_spec.width
    io = ModelIO(input_spec, heatmap_spec, dataset.landmark_names)
    codec = io.codec()
    cached = cache_samples(samples, h, w, reference, progress, input_spec.reducing_gap)
    fit = [cached[i] for i in split[0]]
    val = [cached[i] for i in split[1]]
    io = replace(io, orientation=_orientation_reference(fit, input_spec, dataset.name).to_dict())
    train_set = HeatmapDataset(fit, codec, input_spec.mean, input_spec.std, spec,
                               seed=spec.seed + run.ddp.rank)
    model_spec = replace(ROLE_MODELS[role], num_landmarks=len(dataset.landmark_names))
    model = LandmarkNet(model_spec)
    teacher_sha = None
    if kd != "none":  # the teacher after the student: both draw from the seeded torch stream
        from edgeld.distill.task import DistillationTask

        teacher_net, teacher_sha = load_teacher(teacher, io)
        task = DistillationTask(model, teacher_net, kd)
    else:
        task = make_task(model, spec)
    recipe = {"role": role, "kd": kd, "teacher": teacher, "teacher_sha256": teacher_sha,
              "loss_weights": task.loss_weights, "data": data_dir, "dataset": dataset.name,
              "reference": reference, "train": to_dict(spec), "input": to_dict(input_spec),
              "heatmap": to_dict(heatmap_spec), "model": to_dict(model_spec),
              "val_images": [samples[i].image_id for i in split[1]], "edgeld": __version__}
    validation = dict  # --val-count 0: nothing to select on, the loop keeps the last epoch
    if val:
        val_inputs = torch.stack([HeatmapDataset(val, codec, input_spec.mean, input_spec.std)[i][0]
                                  for i in range(len(val))])
        validation = functools.partial(validate, model, val, codec, val_inputs, reference,
                                       spec.batch_size)
    return RoleSetup(task, train_set, validation, io, recipe)
