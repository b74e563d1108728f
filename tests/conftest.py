"""Shared fixtures: tiny synthetic datasets of both layouts, a tiny checkpoint and its ONNX export."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REAL_DATA = Path(os.environ.get("EDGELD_ISBI2015",
                                Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2015"))
needs_real_data = pytest.mark.skipif(not (REAL_DATA / "dataset.json").is_file(),
                                     reason=f"ISBI 2015 data not found at {REAL_DATA}")

# The validated run behind the shipped student and refiner (trained on 130 images, selected on 20):
# the models shipped before 2026-12-03, whose validation films choose what the shipped pair,
# trained on all 150, decodes and scores with (`fit --into`, README "Reproducing").
VALIDATED_RUN_COMMIT = "c532da1baad1fb316723a2624546f7f9eb31d679"
REPO = Path(__file__).resolve().parents[1]


def validated_run(where: Path) -> Path:
    """Writes the validated student and refiner as `runs/validated/{student,refiner}.safetensors`
    under `where` (the names the shipped contracts record) from git history; skips without it."""
    run = where / "runs" / "validated"
    run.mkdir(parents=True, exist_ok=True)
    for name in ("student", "refiner"):
        done = subprocess.run(["git", "-C", str(REPO), "show",
                               f"{VALIDATED_RUN_COMMIT}:edgeld/weights/isbi2015-{name}.safetensors"],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"the validated run needs git history holding {VALIDATED_RUN_COMMIT[:7]}")
        (run / f"{name}.safetensors").write_bytes(done.stdout)
    return run

SYNTH_NAMES = ("tip", "notch", "corner")
SYNTH_HW = (160, 128)


def synthetic_image(rng: np.random.Generator, points: np.ndarray, hw=SYNTH_HW) -> np.ndarray:
    """Noise with a bright blob at each landmark: learnable, and checkable by eye."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    img = 40 + 20 * rng.random((h, w))
    for k, (x, y) in enumerate(points):
        img += (120 + 30 * k) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (2 + k) ** 2))
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_points(rng: np.random.Generator, hw=SYNTH_HW) -> np.ndarray:
    base = np.array([[0.3, 0.3], [0.7, 0.4], [0.5, 0.75]]) * np.array([hw[1], hw[0]])
    return base + rng.normal(0, 4, size=base.shape)


def make_shared_dataset(root: Path, n_train: int = 12, n_test: int = 4, seed: int = 0) -> Path:
    """A dataset in the shared layout (dataset.json, images/, annotations/, split files)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    header = ["image"] + [f"{n}_{a}" for n in SYNTH_NAMES for a in ("x", "y")]
    rows = {"senior": [header], "junior": [header]}
    ids = [f"{i:03d}.png" for i in range(1, n_train + n_test + 1)]
    for image_id in ids:
        pts = synthetic_points(rng)
        Image.fromarray(synthetic_image(rng, pts)).save(root / "images" / image_id)
        rows["senior"].append([image_id] + [f"{v:.2f}" for v in pts.ravel()])
        junior = pts + rng.normal(0, 1.0, size=pts.shape)
        rows["junior"].append([image_id] + [f"{v:.2f}" for v in junior.ravel()])
    for ref, table in rows.items():
        (root / "annotations" / f"{ref}.csv").write_text("\n".join(",".join(r) for r in table) + "\n")
    (root / "train.txt").write_text("\n".join(ids[:n_train]) + "\n")
    (root / "test1.txt").write_text("\n".join(ids[n_train:]) + "\n")
    (root / "dataset.json").write_text(json.dumps(
        {"name": "synthetic", "pixel_spacing_mm": [0.2, 0.2], "landmarks": list(SYNTH_NAMES)}))
    return root


@pytest.fixture(scope="session")
def shared_dataset(tmp_path_factory) -> Path:
    return make_shared_dataset(tmp_path_factory.mktemp("shared") / "synthetic")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny LandmarkNet for 3 landmarks at 64x64 input (export and runtime plumbing)."""
    import torch

    from edgeld.config import ModelSpec
    from edgeld.core.contract import HeatmapSpec, InputSpec, ModelIO
    from edgeld.models.checkpoint import save_checkpoint
    from edgeld.models.landmarknet import LandmarkNet

    torch.manual_seed(0)
    model = LandmarkNet(ModelSpec(widths=(4, 8, 8, 8, 8), depths=(1, 1, 1, 1), decoder_width=8,
                                  num_landmarks=3))
    # non-trivial batch-norm statistics so folding them into convolutions is really exercised
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, model, ModelIO(InputSpec(64, 64, 0.5, 0.25), HeatmapSpec(4, 1.5), SYNTH_NAMES), {})
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    from edgeld.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(str(tiny_checkpoint), out)
    return out


@pytest.fixture(scope="session")
def trained_tiny(shared_dataset, tmp_path_factory) -> dict:
    """A student trained briefly on the synthetic set at 64x64, exported to FP32 ONNX.

    Lowering tests need a model whose landmarks mean something, so accuracy gates measure real
    changes; the run records its validation images like a real one.
    """
    from edgeld.config import InputSpec, TrainSpec
    from edgeld.export.onnx import export_onnx
    from edgeld.train.trainer import train

    root = tmp_path_factory.mktemp("trained")
    summary = train(str(shared_dataset), str(root / "run"),
                    spec=TrainSpec(epochs=6, batch_size=4, lr=3e-3, warmup_epochs=1, val_count=3,
                                   threads=1),
                    input_spec=InputSpec(height=64, width=64), progress=False)
    onnx_path = root / "student.onnx"
    export_onnx(summary["checkpoint"], onnx_path)
    return {"checkpoint": Path(summary["checkpoint"]), "onnx": onnx_path, "data": shared_dataset}


@pytest.fixture(scope="session")
def refiner(trained_tiny, tmp_path_factory) -> dict:
    """A tiny refiner (32 px patches at factor 1) trained briefly after `trained_tiny`: the
    training summary, with its checkpoint at ["checkpoint"]."""
    from edgeld.config import TrainSpec
    from edgeld.runtime.patches import PatchSpec
    from edgeld.train.refiner import train_refiner

    out = tmp_path_factory.mktemp("refiner") / "run"
    return train_refiner(str(trained_tiny["data"]), str(out), str(trained_tiny["checkpoint"]),
                         TrainSpec(epochs=2, batch_size=8, val_count=3, threads=1),
                         PatchSpec(size=32, factor=1), progress=False)
