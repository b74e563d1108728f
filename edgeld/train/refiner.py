"""Train a cascade's refinement stage: one tiny network reads a patch around any landmark and
re-localizes it on that landmark's channel.

Training patches are centred on the ground truth moved by a random offset that mimics a first
stage's errors; model selection runs the whole cascade (the given first stage, then this refiner)
on the validation images held out from train.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from edgeld import __version__
from edgeld.codecs import SoftmaxHeatmapCodec
from edgeld.config import ModelSpec, TrainSpec, to_dict
from edgeld.data import open_dataset
from edgeld.data.augment import random_intensity
from edgeld.data.images import load_grayscale
from edgeld.errors import UserError
from edgeld.metrics import radial_errors_mm, sdr_percent
from edgeld.models.checkpoint import save_checkpoint
from edgeld.models.landmarknet import LandmarkNet
from edgeld.runtime import LandmarkDetector, ModelIO
from edgeld.runtime.manifest import atomic_write_json, check_output_folder
from edgeld.runtime.patches import PatchSpec, crop_patches, reduce_image
from edgeld.train.tasks import heatmap_loss
from edgeld.train.trainer import lr_factor, split_train_val

# patches are cheap: larger batches, fewer epochs than the whole-image recipe
REFINER_RECIPE = TrainSpec(epochs=60, batch_size=32, warmup_epochs=1)
# the deepest stage sees 2x2 cells of a 64 px patch: 48 channels there (not 64) keep the student
# + refiner pair within the 1.0 M-parameter budget of the deployed cascade
REFINER_MODEL = ModelSpec(widths=(16, 24, 32, 48, 48), depths=(1, 1, 1, 1), decoder_width=32)
# first-stage errors are ~2 mm typical, with a tail past 4 mm; in reduced pixels (0.2 mm) that is a
# jitter of sigma 8 px clipped at 20 px, inside a 64 px (12.8 mm) patch
JITTER_SIGMA_PX = 8.0
JITTER_MAX_PX = 20.0


class PatchDataset(Dataset):
    """(patch (1, S, S), target heatmap (1, h, w), landmark index) for every image x landmark."""

    def __init__(self, reduced: list, points_reduced: list[np.ndarray], spec: PatchSpec,
                 codec: SoftmaxHeatmapCodec, mean: float, std: float, seed: int):
        self.reduced, self.points, self.spec, self.codec = reduced, points_reduced, spec, codec
        self.mean, self.std = mean, std
        self.k = len(points_reduced[0])
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.reduced) * self.k

    def __getitem__(self, index: int):
        i, k = divmod(index, self.k)
        truth = self.points[i][k]
        offset = np.clip(self.rng.normal(0, JITTER_SIGMA_PX, 2), -JITTER_MAX_PX, JITTER_MAX_PX)
        centre = truth + offset
        patch = crop_patches(self.reduced[i], centre[None], self.spec, 0.0, 1.0)[0, 0]
        patch = (random_intensity(self.rng, patch) - self.mean) / self.std
        in_patch = truth - self.spec.patch_origin(centre)
        target = self.codec.encode(in_patch[None])
        return torch.from_numpy(patch[None].astype(np.float32)), torch.from_numpy(target), k


def refiner_loss(logits: torch.Tensor, targets: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Heatmap loss on each patch's own landmark channel."""
    own = logits[torch.arange(len(k)), k][:, None]
    return heatmap_loss(own, targets)


def _split_like_stage1(samples, stage1: str, spec: TrainSpec) -> tuple[list[int], list[int]]:
    """The first stage's own validation images when its checkpoint names them, so the cascade is
    never selected on images the first stage was trained on; else a seeded carve-out."""
    from edgeld.model_ref import resolve_model

    ref = resolve_model(stage1)
    names = ref.metadata.get("training", {}).get("val_images", []) if ref.is_checkpoint else []
    ids = [s.image_id for s in samples]
    if names and set(names) <= set(ids):
        val = sorted(ids.index(n) for n in names)
        return [i for i in range(len(ids)) if i not in set(val)], val
    return split_train_val(len(samples), spec.val_count, spec.seed)


def train_refiner(data_dir: str, out_dir: str, stage1: str, spec: TrainSpec = REFINER_RECIPE,
                  patch: PatchSpec = PatchSpec(), progress: bool = True) -> dict[str, Any]:
    """Train a refiner; select it on the cascade's validation MRE with `stage1` in front."""
    from edgeld.load import open_detector

    out = Path(out_dir)
    check_output_folder(out)
    if (out / "best.safetensors").exists():
        raise UserError(f"{out} already holds a trained run; use another --out")
    dataset = open_dataset(data_dir)
    samples = dataset.split("train")
    fit_idx, val_idx = _split_like_stage1(samples, stage1, spec)
    first = open_detector(stage1)
    if tuple(first.names) != tuple(dataset.landmark_names):
        raise UserError(f"first stage {stage1} predicts other landmarks than {data_dir} holds")
    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    mean, std = first.io.mean, first.io.std
    images = [load_grayscale(s.path) for s in tqdm(samples, desc="loading images",
                                                    disable=not progress, leave=False)]
    reduced = [reduce_image(img, patch.factor) for img in images]
    truth = [patch.source_to_reduced(s.reference(dataset.default_reference)) for s in samples]
    codec = SoftmaxHeatmapCodec((patch.size, patch.size), 4, 1.5)
    io = ModelIO(patch.size, patch.size, mean, std, 4, 1.5, dataset.landmark_names,
                 patch_size=patch.size, patch_factor=patch.factor)

    val_images = [images[i] for i in val_idx]
    val_refs = np.stack([samples[i].reference(dataset.default_reference) for i in val_idx])
    val_spacing = np.array([samples[i].spacing_mm or (1.0, 1.0) for i in val_idx])
    stage1_points = np.stack([d.landmarks_px for d in first.detect_batch(val_images)])
    stage1_mre = float(radial_errors_mm(stage1_points, val_refs, val_spacing).mean())

    train_set = PatchDataset([reduced[i] for i in fit_idx], [truth[i] for i in fit_idx], patch,
                             codec, mean, std, spec.seed)
    loader = DataLoader(train_set, batch_size=spec.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(spec.seed))
    model = LandmarkNet(replace(REFINER_MODEL, num_landmarks=len(dataset.landmark_names)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    total = spec.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, spec.warmup_epochs * len(loader), total))
    recipe = {"role": "refiner", "stage1": stage1, "data": str(data_dir), "dataset": dataset.name,
              "train": to_dict(spec), "patch": {"size": patch.size, "factor": patch.factor},
              "jitter_px": [JITTER_SIGMA_PX, JITTER_MAX_PX], "model": to_dict(model.spec),
              "val_images": [samples[i].image_id for i in val_idx], "edgeld": __version__}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", recipe)
    best, elapsed = {"val_mre_mm": float("inf")}, 0.0
    for epoch in range(spec.epochs):
        t0 = time.perf_counter()
        model.train()
        losses = []
        for x, target, k in tqdm(loader, desc=f"epoch {epoch + 1}/{spec.epochs}",
                                 disable=not progress, leave=False):
            loss = refiner_loss(model(x), target, k)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        model.eval()
        from edgeld.models.runner import TorchRunner

        refiner = LandmarkDetector(runner=TorchRunner(model), io=io)
        refined = np.stack([refiner.refine(img, p)[0] for img, p in zip(val_images, stage1_points)])
        errors = radial_errors_mm(refined, val_refs, val_spacing)
        elapsed += time.perf_counter() - t0
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                  "val_mre_mm": float(errors.mean()), "val_sdr_2mm": sdr_percent(errors)["2.0"],
                  "val_stage1_mre_mm": stage1_mre, "elapsed_s": round(elapsed, 1)}
        if record["val_mre_mm"] < best["val_mre_mm"]:
            best = {k: record[k] for k in ("val_mre_mm", "val_sdr_2mm", "epoch")}
            save_checkpoint(out / "best.safetensors", model, io, {"training": {**recipe, "best": best}})
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if progress:
            tqdm.write(f"epoch {epoch + 1:3d}  loss {record['train_loss']:.4f}  cascade val MRE "
                       f"{record['val_mre_mm']:.3f} mm (first stage {stage1_mre:.3f})")
    summary = {"best": best, "checkpoint": str(out / "best.safetensors"), "wall_s": round(elapsed, 1),
               "rank": 0}
    atomic_write_json(out / "summary.json", summary)
    return summary
