"""The cascade's refinement stage: patch geometry, training, and detection with a refiner."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgeld.core.errors import UserError
from edgeld.load import open_detector
from edgeld.runtime.patches import PatchSpec, crop_patches, reduce_image


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_patch_geometry_puts_a_bright_pixel_where_expected(factor):
    rx, ry = 10, 20  # one bright pixel of the reduced image = a factor x factor source block
    image = np.zeros((40 * factor, 30 * factor), np.float32)
    image[ry * factor:(ry + 1) * factor, rx * factor:(rx + 1) * factor] = 1.0
    spec = PatchSpec(size=16, factor=factor)
    centres = np.array([[rx + 0.5, ry + 0.5]])  # patch pixels then fall on reduced pixels
    patch = crop_patches(reduce_image(image, factor), centres, spec, 0.0, 1.0)[0, 0]
    assert patch.max() == pytest.approx(1.0)
    iy, ix = np.unravel_index(patch.argmax(), patch.shape)
    found = spec.reduced_to_source(spec.patch_origin(centres)[0] + [ix, iy])
    block_centre = np.array([rx, ry]) * factor + (factor - 1) / 2
    assert np.allclose(found, block_centre)
    pts = np.array([[3.3, 7.9]])
    assert np.allclose(spec.reduced_to_source(spec.source_to_reduced(pts)), pts)


def test_patches_outside_the_image_are_zero_filled():
    spec = PatchSpec(size=8, factor=1)
    patch = crop_patches(reduce_image(np.ones((10, 10), np.float32), 1), np.array([[-20.0, -20.0]]),
                         spec, 0.0, 1.0)
    assert patch.shape == (1, 1, 8, 8) and not patch.any()


@pytest.mark.parametrize("factor, dtype", [(2, np.uint8), (3, np.uint8), (2, np.uint16)])
def test_patches_from_windows_equal_patches_from_the_whole_reduced_film(factor, dtype):
    from edgeld.runtime.patches import patches_around

    rng = np.random.default_rng(factor)
    image = rng.integers(0, np.iinfo(dtype).max, size=(301, 257), dtype=dtype)  # sizes not divisible
    spec = PatchSpec(size=24, factor=factor)
    # inside, at every border, a corner, half off the film, and wholly off it
    points = np.array([[128.3, 150.7], [0.2, 10.0], [256.9, 200.1], [100.0, 300.6], [1.0, 1.0],
                       [-20.0, 50.0], [270.0, 310.0], [-500.0, -500.0], [255.5, 299.5]])
    got, centres = patches_around(image, points, spec, 0.5, 0.25)
    whole = crop_patches(reduce_image(image, factor), centres, spec, 0.5, 0.25)
    assert got.shape == whole.shape and np.array_equal(got, whole)


def test_inner_patches_fast_path_equals_the_whole_reduced_film():
    from edgeld.runtime.patches import _inner_patches, patches_around

    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=(400, 360), dtype=np.uint8)
    spec = PatchSpec(size=24, factor=2)
    points = rng.uniform(40, 320, size=(19, 2))  # all well inside: the vectorised path
    got, centres = patches_around(image, points, spec, 0.5, 0.25)
    assert _inner_patches(image, centres, spec, 0.5, 0.25) is not None
    assert np.array_equal(got, crop_patches(reduce_image(image, 2), centres, spec, 0.5, 0.25))


def test_refiner_training_logs_cascade_metrics(refiner):
    log = [json.loads(x) for x in open(refiner["checkpoint"].replace("best.safetensors",
                                                                     "metrics.jsonl"))]
    assert [r["epoch"] for r in log] == [1, 2]
    assert all(r["val_mre_mm"] > 0 and r["val_stage1_mre_mm"] > 0 for r in log)


def test_detector_with_refiner_torch_and_onnx_agree(refiner, trained_tiny, tmp_path):
    from edgeld.export.onnx import export_onnx
    from conftest import synthetic_image, synthetic_points

    onnx_refiner = tmp_path / "refiner.onnx"
    export_onnx(refiner["checkpoint"], onnx_refiner)
    rng = np.random.default_rng(5)
    images = [synthetic_image(rng, synthetic_points(rng)) for _ in range(2)]
    plain = open_detector(str(trained_tiny["onnx"])).detect_batch(images)
    torch_cascade = open_detector(str(trained_tiny["checkpoint"]), refiner=refiner["checkpoint"])
    onnx_cascade = open_detector(str(trained_tiny["onnx"]), refiner=str(onnx_refiner))
    for p, a, b in zip(plain, torch_cascade.detect_batch(images), onnx_cascade.detect_batch(images)):
        assert np.abs(a.landmarks_px - b.landmarks_px).max() < 0.05
        assert not np.allclose(p.landmarks_px, b.landmarks_px)  # the second stage moved them


def test_refiner_alone_is_refused(refiner):
    det = open_detector(refiner["checkpoint"])
    with pytest.raises(UserError, match="refinement stage"):
        det.detect(np.zeros((40, 40), np.uint8))


def test_refiners_chain_coarse_to_fine(refiner, trained_tiny):
    from conftest import synthetic_image, synthetic_points

    rng = np.random.default_rng(6)
    image = synthetic_image(rng, synthetic_points(rng))
    one = open_detector(str(trained_tiny["checkpoint"]), refiner=[refiner["checkpoint"]])
    two = open_detector(str(trained_tiny["checkpoint"]),
                        refiner=[refiner["checkpoint"], refiner["checkpoint"]])
    first = one.detect(image).landmarks_px
    # the second pass starts where the first ended, so it is the first pass applied twice
    again = one.refiner.refine(image, first)[0]
    assert np.allclose(two.detect(image).landmarks_px, again, atol=1e-4)


def test_refiner_selects_on_the_first_stage_validation_images(trained_tiny):
    from edgeld.data import open_dataset
    from edgeld.info import checkpoint_metadata
    from edgeld.train.refiner import REFINER_RECIPE, _split_like_stage1

    samples = open_dataset(trained_tiny["data"]).split("train")
    stage1_val = checkpoint_metadata(trained_tiny["checkpoint"])["training"]["val_images"]
    fit, val = _split_like_stage1(samples, str(trained_tiny["checkpoint"]), REFINER_RECIPE)
    assert sorted(samples[i].image_id for i in val) == sorted(stage1_val)
    assert not set(fit) & set(val) and len(fit) + len(val) == len(samples)


def _train_refiner_cli(*args, torchrun: int = 0) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(torchrun),
                 "--master_port", str(29500 + os.getpid() % 1000 + 7), "-m", "edgeld"]
                if torchrun else [sys.executable, "-m", "edgeld"])
    return subprocess.run([*launcher, "train", "--role", "refiner", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


REFINER_ARGS = ("--patch-factor", "1", "--epochs", "2", "--batch-size", "8", "--val-count", "3",
                "--threads", "1")


def test_refiner_trains_on_the_device_asked_for(tiny_checkpoint, shared_dataset, tmp_path):
    out = tmp_path / "run"
    res = _train_refiner_cli("--stage1", tiny_checkpoint, "--data", shared_dataset, "--out", out,
                             "--device", "cpu", *REFINER_ARGS)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "cascade validation MRE" in res.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["role"] == "refiner" and config["device"] == "cpu"
    assert (out / "last.pt").is_file()  # resumable, like every role
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert open_detector(str(out / "best.safetensors")).io.patch_size == 64


def test_refiner_refuses_cuda_without_a_gpu_in_one_line(tiny_checkpoint, shared_dataset, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    res = _train_refiner_cli("--stage1", tiny_checkpoint, "--data", shared_dataset,
                             "--out", tmp_path / "run", "--device", "cuda", *REFINER_ARGS)
    assert res.returncode == 2 and "--device cuda" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_refiner_options_that_belong_to_other_roles_are_refused(tiny_checkpoint, shared_dataset,
                                                                tmp_path):
    res = _train_refiner_cli("--stage1", tiny_checkpoint, "--data", shared_dataset,
                             "--out", tmp_path / "run", "--input-size", "64x64", *REFINER_ARGS)
    assert res.returncode == 2 and "a refiner takes" in res.stderr
    res = _train_refiner_cli("--stage1", tiny_checkpoint, "--data", shared_dataset,
                             "--out", tmp_path / "none", "--resume", *REFINER_ARGS)
    assert res.returncode == 2 and "no " in res.stderr and "last.pt" in res.stderr
    res = subprocess.run([sys.executable, "-m", "edgeld", "train", "--data", str(shared_dataset),
                          "--out", str(tmp_path / "student"), "--patch-factor", "4"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--patch-factor is a refiner's option" in res.stderr


def test_refiner_under_torchrun_two_processes_on_gloo(tiny_checkpoint, shared_dataset, tmp_path):
    """torchrun with 2 CPU processes (gloo): one log line per epoch, one checkpoint."""
    out = tmp_path / "ddp"
    res = _train_refiner_cli("--stage1", tiny_checkpoint, "--data", shared_dataset, "--out", out,
                             "--device", "cpu", *REFINER_ARGS, torchrun=2)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert json.loads((out / "config.json").read_text())["processes"] == 2
    assert (out / "best.safetensors").is_file()


def _patch_dataset(rotate_deg: float, scale_range: float, seed: int = 0):
    from edgeld.core.codec import SoftmaxHeatmapCodec
    from edgeld.torchside.patch_dataset import PatchDataset

    rng = np.random.default_rng(3)
    reduced = rng.uniform(0, 255, size=(200, 180)).astype(np.uint8)
    truth = np.array([[70.3, 90.6], [110.2, 60.9]])
    return PatchDataset([reduced], [truth], PatchSpec(32, 1), SoftmaxHeatmapCodec((32, 32), 4, 1.5),
                        0.0, 1.0, seed, 4.0, 10.0, rotate_deg, scale_range), reduced, truth


def test_turned_patch_with_no_turn_is_the_runtime_crop():
    dataset, reduced, truth = _patch_dataset(1e-12, 0.0)
    centre = truth[0] + np.array([3.3, -2.1])
    patch, in_patch = dataset._turned(reduced, centre, truth[0])
    spec = PatchSpec(32, 1)
    assert np.allclose(patch, crop_patches(reduced, centre[None], spec, 0.0, 1.0)[0, 0], atol=1e-4)
    assert np.allclose(in_patch, truth[0] - spec.patch_origin(centre), atol=1e-6)


def test_turned_patch_moves_its_target_with_the_pixels():
    """A bright blob at the truth lands where the turned target says, at any turn and scale."""
    dataset, _, truth = _patch_dataset(30.0, 0.25, seed=5)
    reduced = np.zeros((200, 180), dtype=np.float32)
    # a smooth blob (sigma 2 px) centred on the truth, whose centroid follows the warp exactly
    ys, xs = np.mgrid[:200, :180]
    reduced += np.exp(-((xs - truth[0, 0]) ** 2 + (ys - truth[0, 1]) ** 2) / (2 * 2.0 ** 2))
    for _ in range(10):
        centre = truth[0] + dataset.rng.uniform(-6, 6, size=2)
        patch, in_patch = dataset._turned(reduced, centre, truth[0])
        py, px = np.mgrid[:32, :32]
        centroid = np.array([(patch * px).sum(), (patch * py).sum()]) / patch.sum()
        assert np.abs(centroid - in_patch).max() < 0.05


def test_turned_patches_refuse_an_odd_size():
    from edgeld.core.codec import SoftmaxHeatmapCodec
    from edgeld.torchside.patch_dataset import PatchDataset

    with pytest.raises(ValueError, match="even patch size"):
        PatchDataset([np.zeros((50, 50))], [np.zeros((1, 2))], PatchSpec(31, 1),
                     SoftmaxHeatmapCodec((31, 31), 4, 1.5), 0.0, 1.0, 0, 4.0, 10.0, 10.0, 0.1)


def test_refiner_behind_a_stage1_trained_on_every_image(shared_dataset, tmp_path):
    """A first stage trained with --val-count 0 leaves no film to validate a cascade on: its
    refiner must train the same way (every image, last epoch), and says so when asked otherwise."""
    from edgeld.config import InputSpec, TrainSpec
    from edgeld.models.checkpoint import load_checkpoint
    from edgeld.train.trainer import train

    stage1 = train(str(shared_dataset), str(tmp_path / "stage1"),
                   spec=TrainSpec(epochs=1, batch_size=4, val_count=0, threads=1),
                   input_spec=InputSpec(height=64, width=64), progress=False)["checkpoint"]
    refused = _train_refiner_cli("--stage1", stage1, "--data", shared_dataset,
                                 "--out", tmp_path / "refused", *REFINER_ARGS)
    assert refused.returncode == 2 and "--val-count 0" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "refused").exists()
    args = [a if a != "3" else "0" for a in REFINER_ARGS]  # --val-count 0
    res = _train_refiner_cli("--stage1", stage1, "--data", shared_dataset, "--out", tmp_path / "run", *args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "last epoch 2 (no validation images)" in res.stdout
    _, _, meta = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert meta["training"]["val_images"] == [] and meta["training"]["best"]["epoch"] == 2


def test_refiner_trains_toward_the_annotation_asked_for(tiny_checkpoint, shared_dataset, tmp_path):
    """--reference mean reaches the refiner's targets and its cascade validation: the same seed
    scores another validation MRE, and the checkpoint records the annotation."""
    from edgeld.models.checkpoint import load_checkpoint

    logged = {}
    for ref in ("senior", "mean"):
        res = _train_refiner_cli("--stage1", tiny_checkpoint, "--data", shared_dataset,
                                 "--out", tmp_path / ref, "--reference", ref, *REFINER_ARGS)
        assert res.returncode == 0, res.stderr[-2000:]
        logged[ref] = json.loads((tmp_path / ref / "metrics.jsonl").read_text().splitlines()[0])
        _, _, meta = load_checkpoint(tmp_path / ref / "best.safetensors")
        assert meta["training"]["reference"] == ref
    assert logged["mean"]["val_mre_mm"] != logged["senior"]["val_mre_mm"]
