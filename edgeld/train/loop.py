"""The one training loop every role runs through: student, teacher, reference and refiner.

A role brings a `RoleSetup`: its objective (a task returning named losses), its training set, its
validation and what its checkpoint records. The loop owns the rest, the same for every role: data
order, optimizer and schedule, DDP under torchrun, the device, resume, logs and checkpoints.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from edgeld.config import TrainSpec
from edgeld.core.errors import UserError
from edgeld.models.checkpoint import save_checkpoint
from edgeld.core.contract import ModelIO
from edgeld.core.files import atomic_write_json
from edgeld.train.distributed import Distributed, resolve_device
from edgeld.train.run_folder import LOG, RESUME_STATE, append_record, drop_log_lines_after


@dataclass
class RoleSetup:
    """What one role brings to the loop."""

    task: nn.Module  # .net (the model a checkpoint holds), .loss_weights, forward(*batch) -> losses
    train_set: Dataset  # with .rng, its numpy augmentation stream (saved for resume)
    validate: Callable[[], dict[str, float]]  # val_mre_mm, val_sdr_2mm, ... of task.net as it is
    io: ModelIO  # what the checkpoint tells its readers about the model's input and output
    recipe: dict[str, Any]  # config.json, and the checkpoint's "training" metadata


@dataclass(frozen=True)
class RunContext:
    """This process's place in a run: its rank under torchrun and its device."""

    ddp: Distributed
    device: torch.device


@dataclass
class _Progress:
    """What the loop carries from epoch to epoch, and through last.pt across a kill."""

    epoch: int = 0  # epochs finished
    best: dict[str, Any] = field(default_factory=lambda: {"val_mre_mm": float("inf")})
    elapsed: float = 0.0


# how a run without validation images chose its checkpoint (summary.json, checkpoint metadata)
LAST_EPOCH = "last epoch: trained on every image, no validation"


def split_train_val(n: int, val_count: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded, reproducible carve-out of `val_count` validation indices from n training images;
    0 trains on all of them (the final run of a recipe whose epoch count validation fixed)."""
    if val_count == 0:
        return list(range(n)), []
    if not 0 < val_count < n:
        raise UserError(f"--val-count must be between 0 and {n - 1} for a train split of {n} images")
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[val_count:].tolist()), sorted(order[:val_count].tolist())


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))


def start_run(spec: TrainSpec, device: str) -> RunContext:
    """Join torchrun's process group if there is one, pick the device and seed torch's stream.

    A role calls it right before it builds its model: the model's initial weights (and those of
    anything built after it, a teacher or adapters) come from this stream, as the recipes were
    recorded; what a role loads before (a refiner's first stage) does not shift them."""
    ddp = Distributed.from_env()
    if spec.batch_size % ddp.world_size:
        raise UserError(f"--batch-size {spec.batch_size} must divide evenly over {ddp.world_size} "
                        "processes (it is the global batch)")
    dev = resolve_device(device, ddp.local_rank)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    return RunContext(ddp, dev)


def run_training_loop(setup: RoleSetup, spec: TrainSpec, out: Path, run: RunContext,
                      resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train `setup.task` for `spec.epochs`, validating, logging and checkpointing after each epoch
    on rank 0; with `resume`, continue from `out`/last.pt exactly where the killed run stopped.
    Returns the best epoch's validation metrics, the checkpoint path, the wall time and the rank."""
    ddp, dev = run.ddp, run.device
    task = setup.task.to(dev)
    generator = torch.Generator().manual_seed(spec.seed)
    sampler = (DistributedSampler(setup.train_set, ddp.world_size, ddp.rank, shuffle=True,
                                  seed=spec.seed, drop_last=True) if ddp.enabled else None)
    loader = DataLoader(setup.train_set, batch_size=spec.batch_size // ddp.world_size,
                        shuffle=sampler is None, sampler=sampler, drop_last=True,
                        generator=generator, num_workers=0)
    optimizer = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=spec.lr,
                                  weight_decay=spec.weight_decay)
    steps = len(loader)
    if steps == 0:
        raise UserError(f"{len(setup.train_set)} training samples is fewer than one batch of "
                        f"{spec.batch_size}")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, spec.warmup_epochs * steps, spec.epochs * steps))
    recipe = {**setup.recipe, "device": dev.type}
    # DDP averages gradients over processes; the task's loss_weights stay on the plain module
    step_fn = (DistributedDataParallel(task, device_ids=[dev] if dev.type == "cuda" else None)
               if ddp.enabled else task)
    optim = (optimizer, scheduler, generator)
    if resume:
        state = _restore(out / RESUME_STATE, setup, optim, spec.seed, run)
        drop_log_lines_after(out / LOG, state.epoch)
    else:
        state = _Progress()
        if ddp.is_main:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / "config.json", {**recipe, "processes": ddp.world_size})

    for epoch in range(state.epoch, spec.epochs):
        t0 = time.perf_counter()
        if sampler is not None:
            sampler.set_epoch(epoch)
        losses = _train_one_epoch(step_fn, task, loader, optimizer, scheduler, dev,
                                  f"epoch {epoch + 1}/{spec.epochs}", progress)
        if not ddp.is_main:  # rank 0 validates, logs and checkpoints; the others wait for it
            ddp.barrier()
            continue
        metrics = setup.validate()
        state.elapsed += time.perf_counter() - t0
        record = {"epoch": epoch + 1, **losses, "lr": optimizer.param_groups[0]["lr"], **metrics,
                  "elapsed_s": round(state.elapsed, 1)}
        _finish_epoch(setup, recipe, record, metrics, state, optim, out, dev, progress)
        ddp.barrier()
    summary = {"best": state.best, "checkpoint": str(out / "best.safetensors"),
               "wall_s": round(state.elapsed, 1), "rank": ddp.rank}
    if ddp.is_main:
        atomic_write_json(out / "summary.json", summary)
    ddp.close()
    return summary


def _train_one_epoch(step_fn: nn.Module, task: nn.Module, loader: DataLoader, optimizer, scheduler,
                     dev: torch.device, desc: str, progress: bool) -> dict[str, float]:
    """One pass over the loader; the epoch's mean weighted loss and mean of each named loss."""
    task.train()
    losses, named = [], {}
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False)
    for batch in bar:
        parts = step_fn(*(t.to(dev) for t in batch))
        loss = sum(task.loss_weights[name] * value for name, value in parts.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        for name, value in parts.items():
            named.setdefault(name, []).append(value.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return {"train_loss": float(np.mean(losses)),
            **{f"loss_{k}": float(np.mean(v)) for k, v in named.items()}}


def _finish_epoch(setup: RoleSetup, recipe: dict[str, Any], record: dict[str, Any],
                  metrics: dict[str, float], state: _Progress, optim: tuple, out: Path,
                  dev: torch.device, progress: bool) -> None:
    """Rank 0's end of an epoch: the best checkpoint if this epoch is best, its log line, then the
    resume state (last, so a kill in between re-runs this epoch rather than skipping it)."""
    epoch = record["epoch"]
    if not metrics or metrics["val_mre_mm"] < state.best["val_mre_mm"]:
        # without validation images (--val-count 0) the recipe's epoch count decides: the last
        state.best = {**metrics, "epoch": epoch} if metrics else {"epoch": epoch, "selection": LAST_EPOCH}
        net = setup.task.net
        cpu_net = copy.deepcopy(net).cpu() if dev.type != "cpu" else net
        save_checkpoint(out / "best.safetensors", cpu_net, setup.io,
                        {"training": {**recipe, "best": state.best}})
    append_record(out, record)
    state.epoch = epoch
    _save_resume_state(out / RESUME_STATE, setup, optim, state)
    if progress and not metrics:
        tqdm.write(f"epoch {epoch:3d}  loss {record['train_loss']:.4f}  (no validation images)")
    elif progress:
        tqdm.write(f"epoch {epoch:3d}  loss {record['train_loss']:.4f}  "
                   f"val MRE {record['val_mre_mm']:.3f} mm  SDR@2mm {record['val_sdr_2mm']:.1f}%  "
                   f"best {state.best['val_mre_mm']:.3f} mm (epoch {state.best['epoch']})")


def _save_resume_state(path: Path, setup: RoleSetup, optim: tuple, state: _Progress) -> None:
    optimizer, scheduler, generator = optim
    payload = {"model": setup.task.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
               "loader_rng": generator.get_state(),
               "augment_rng": setup.train_set.rng.bit_generator.state,
               "epoch": state.epoch, "best": state.best, "elapsed_s": state.elapsed}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _restore(path: Path, setup: RoleSetup, optim: tuple, seed: int, run: RunContext) -> _Progress:
    """Put model, optimizer, schedule and every random stream back as last.pt recorded them."""
    optimizer, scheduler, generator = optim
    saved = torch.load(path, weights_only=True, map_location=run.device)
    setup.task.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"].cpu())
    generator.set_state(saved["loader_rng"].cpu())
    if run.ddp.is_main:  # other ranks' augmentation streams are reseeded, not restored
        setup.train_set.rng.bit_generator.state = saved["augment_rng"]
    else:
        setup.train_set.rng = np.random.default_rng([seed, run.ddp.rank, saved["epoch"]])
    return _Progress(saved["epoch"], saved["best"], saved["elapsed_s"])
