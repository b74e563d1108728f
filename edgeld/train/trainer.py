"""Train a heatmap network on a dataset's train split, selecting on a validation split carved from it.

The run folder holds `best.safetensors` (the selected model), `last.pt` (everything needed to
resume: model, optimizer, scheduler, RNG states), `metrics.jsonl` (one line per epoch) and
`config.json` (the recipe).
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from edgeld import __version__
from edgeld.codecs import SoftmaxHeatmapCodec
from edgeld.config import HeatmapSpec, InputSpec, ModelSpec, TrainSpec, to_dict
from edgeld.data import open_dataset
from edgeld.data.torch_dataset import CachedSample, HeatmapDataset, cache_samples
from edgeld.errors import UserError
from edgeld.metrics import radial_errors_mm, sdr_percent
from edgeld.model_ref import ModelArg, resolve_model
from edgeld.models.checkpoint import save_checkpoint
from edgeld.models.landmarknet import LandmarkNet
from edgeld.runtime.detector import decode_to_source
from edgeld.runtime.manifest import (ModelIO, atomic_write_bytes, atomic_write_json,
                                     check_output_folder)
from edgeld.train.distributed import Distributed
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


def split_train_val(n: int, val_count: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded, reproducible carve-out of `val_count` validation indices from n training images."""
    if not 0 < val_count < n:
        raise UserError(f"--val-count must be between 1 and {n - 1} for a train split of {n} images")
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[val_count:].tolist()), sorted(order[:val_count].tolist())


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))


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
    from edgeld.runtime.manifest import sha256_file

    return teacher, sha256_file(path)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'cpu', 'cuda' (this process's GPU under torchrun) or 'auto' (CUDA when there is one)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: this torch build sees no CUDA GPU; use --device cpu")
        return torch.device("cuda", local_rank)
    if name != "cpu":
        raise UserError(f"--device must be auto, cpu or cuda (got {name!r})")
    return torch.device("cpu")


def train(data_dir: str, out_dir: str, role: str = "student", spec: TrainSpec = TrainSpec(),
          input_spec: InputSpec = InputSpec(), heatmap_spec: HeatmapSpec = HeatmapSpec(),
          resume: bool = False, progress: bool = True, kd: str = "none",
          teacher: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Train one model; returns the best epoch's validation metrics and the checkpoint path.

    With `kd` other than "none", the student learns from the frozen `teacher` as well (see
    edgeld.distill.task). `device` changes where the arithmetic runs, not the recipe: the same
    data order, augmentation and schedule (CUDA kernels are not bit-identical to CPU ones)."""
    if (kd == "none") != (teacher is None):
        raise UserError("--kd METHOD and --teacher MODEL go together (or neither)")
    if kd != "none" and role != "student":
        raise UserError("distillation trains a student: use --role student with --kd")
    if kd != "none" and (spec.offset_weight or spec.reconstruction_weight):
        raise UserError("--aux (multi-task) and --kd are separate recipes; choose one")
    out = Path(out_dir)
    check_output_folder(out)
    last_path = out / "last.pt"
    if resume and not last_path.is_file():
        raise UserError(f"--resume: no {last_path} to resume from")
    if not resume and (out / "best.safetensors").exists():
        raise UserError(f"{out} already holds a trained run; use --resume or another --out")
    dataset = open_dataset(data_dir)
    samples = dataset.split("train")
    reference = dataset.default_reference
    fit_idx, val_idx = split_train_val(len(samples), spec.val_count, spec.seed)
    ddp = Distributed.from_env()
    if spec.batch_size % ddp.world_size:
        raise UserError(f"--batch-size {spec.batch_size} must divide evenly over {ddp.world_size} "
                        "processes (it is the global batch)")
    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    progress = progress and ddp.is_main

    h, w = input_spec.height, input_spec.width
    codec = SoftmaxHeatmapCodec((h, w), heatmap_spec.stride, heatmap_spec.sigma)
    cached = cache_samples(samples, h, w, reference, progress)
    fit = [cached[i] for i in fit_idx]
    val = [cached[i] for i in val_idx]
    val_inputs = torch.stack([HeatmapDataset(val, codec, input_spec.mean, input_spec.std)[i][0]
                              for i in range(len(val))])
    train_set = HeatmapDataset(fit, codec, input_spec.mean, input_spec.std, spec,
                               seed=spec.seed + ddp.rank)
    generator = torch.Generator().manual_seed(spec.seed)
    sampler = (DistributedSampler(train_set, ddp.world_size, ddp.rank, shuffle=True, seed=spec.seed,
                                  drop_last=True) if ddp.enabled else None)
    loader = DataLoader(train_set, batch_size=spec.batch_size // ddp.world_size,
                        shuffle=sampler is None, sampler=sampler, drop_last=True,
                        generator=generator, num_workers=0)

    model_spec = replace(ROLE_MODELS[role], num_landmarks=len(dataset.landmark_names))
    model = LandmarkNet(model_spec)
    io = ModelIO(h, w, input_spec.mean, input_spec.std, heatmap_spec.stride, heatmap_spec.sigma,
                 dataset.landmark_names)
    teacher_sha = None
    if kd != "none":
        from edgeld.distill.task import DistillationTask

        teacher_net, teacher_sha = load_teacher(teacher, io)
        task = DistillationTask(model, teacher_net, kd)
    else:
        task = make_task(model, spec)
    dev = resolve_device(device, ddp.local_rank)
    task.to(dev)
    optimizer = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=spec.lr,
                                  weight_decay=spec.weight_decay)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise UserError(f"{len(fit)} training images is fewer than one batch of {spec.batch_size}")
    total = spec.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, spec.warmup_epochs * steps_per_epoch, total))
    recipe = {"role": role, "kd": kd, "teacher": teacher, "teacher_sha256": teacher_sha,
              "loss_weights": task.loss_weights, "data": str(data_dir), "dataset": dataset.name,
              "reference": reference, "train": to_dict(spec), "input": to_dict(input_spec),
              "heatmap": to_dict(heatmap_spec), "model": to_dict(model_spec),
              "val_images": [samples[i].image_id for i in val_idx], "edgeld": __version__,
              "device": dev.type}

    # DDP averages gradients over processes; the task's loss_weights stay on the plain module
    step_fn = (DistributedDataParallel(task, device_ids=[dev] if dev.type == "cuda" else None)
               if ddp.enabled else task)
    start_epoch, best, elapsed = 0, {"val_mre_mm": float("inf")}, 0.0
    if resume:
        state = torch.load(last_path, weights_only=True, map_location=dev)
        task.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        generator.set_state(state["loader_rng"].cpu())
        if ddp.is_main:  # other ranks' augmentation streams are reseeded, not restored
            train_set.rng.bit_generator.state = state["augment_rng"]
        else:
            train_set.rng = np.random.default_rng([spec.seed, ddp.rank, state["epoch"]])
        start_epoch, best, elapsed = state["epoch"], state["best"], state["elapsed_s"]
        _drop_log_lines_after(out / "metrics.jsonl", start_epoch)
    elif ddp.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", {**recipe, "processes": ddp.world_size})

    for epoch in range(start_epoch, spec.epochs):
        t0 = time.perf_counter()
        if sampler is not None:
            sampler.set_epoch(epoch)
        task.train()
        losses, named = [], {}
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{spec.epochs}", disable=not progress, leave=False)
        for x, target, cells in bar:
            x, target, cells = x.to(dev), target.to(dev), cells.to(dev)
            parts = step_fn(x, target, cells)
            loss = sum(task.loss_weights[name] * value for name, value in parts.items())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            for name, value in parts.items():
                named.setdefault(name, []).append(value.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if not ddp.is_main:  # rank 0 validates, logs and checkpoints; the others wait for it
            ddp.barrier()
            continue
        metrics = validate(model, val, codec, val_inputs, reference, spec.batch_size)
        elapsed += time.perf_counter() - t0
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                  **{f"loss_{k}": float(np.mean(v)) for k, v in named.items()},
                  "lr": optimizer.param_groups[0]["lr"], **metrics, "elapsed_s": round(elapsed, 1)}
        if metrics["val_mre_mm"] < best["val_mre_mm"]:
            best = {**metrics, "epoch": epoch + 1}
            cpu_model = copy.deepcopy(model).cpu() if dev.type != "cpu" else model
            save_checkpoint(out / "best.safetensors", cpu_model, io,
                            {"training": {**recipe, "best": best}})
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        _save_resume_state(last_path, task, optimizer, scheduler, generator, train_set, epoch + 1,
                           best, elapsed)
        if progress:
            tqdm.write(f"epoch {epoch + 1:3d}  loss {record['train_loss']:.4f}  "
                       f"val MRE {metrics['val_mre_mm']:.3f} mm  SDR@2mm {metrics['val_sdr_2mm']:.1f}%  "
                       f"best {best['val_mre_mm']:.3f} mm (epoch {best.get('epoch')})")
        ddp.barrier()
    summary = {"best": best, "checkpoint": str(out / "best.safetensors"), "wall_s": round(elapsed, 1),
               "rank": ddp.rank}
    if ddp.is_main:
        atomic_write_json(out / "summary.json", summary)
    ddp.close()
    return summary


def _drop_log_lines_after(log: Path, epoch: int) -> None:
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


def _save_resume_state(path: Path, task, optimizer, scheduler, generator, train_set, epoch: int,
                       best: dict, elapsed: float) -> None:
    state = {"model": task.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
             "loader_rng": generator.get_state(), "augment_rng": train_set.rng.bit_generator.state,
             "epoch": epoch, "best": best, "elapsed_s": elapsed}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
