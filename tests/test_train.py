"""Training on tiny synthetic data: it learns, it logs, and it resumes after SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from edgeld.config import InputSpec, TrainSpec
from edgeld.core.errors import UserError
from edgeld.train.loop import lr_factor, split_train_val
from edgeld.train.trainer import train

FAST = TrainSpec(epochs=4, batch_size=4, lr=3e-3, warmup_epochs=1, val_count=3, threads=1)
SMALL_INPUT = InputSpec(height=64, width=64)


def test_split_is_seeded_and_disjoint():
    fit, val = split_train_val(20, 5, seed=1)
    assert len(val) == 5 and not set(fit) & set(val) and sorted(fit + val) == list(range(20))
    assert split_train_val(20, 5, seed=1) == (fit, val)
    with pytest.raises(UserError):
        split_train_val(5, 5, seed=0)


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100) == pytest.approx(0.01)


def test_training_learns_and_writes_a_loadable_checkpoint(shared_dataset, tmp_path):
    from edgeld.load import open_detector

    summary = train(str(shared_dataset), str(tmp_path / "run"), spec=FAST, input_spec=SMALL_INPUT,
                    progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3, 4]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert summary["best"]["val_mre_mm"] == min(x["val_mre_mm"] for x in lines)
    det = open_detector(summary["checkpoint"])
    assert det.io.input_height == 64 and det.names == ("tip", "notch", "corner")
    with pytest.raises(UserError, match="already holds"):
        train(str(shared_dataset), str(tmp_path / "run"), spec=FAST, input_spec=SMALL_INPUT,
              progress=False)


def test_resume_after_sigkill_matches_uninterrupted_run(shared_dataset, tmp_path):
    spec = replace(FAST, epochs=6)
    train(str(shared_dataset), str(tmp_path / "full"), spec=spec, input_spec=SMALL_INPUT,
          progress=False)
    code = (f"from edgeld.train.trainer import train; from edgeld.config import *;"
            f"train({str(shared_dataset)!r}, {str(tmp_path / 'cut')!r}, spec={spec!r},"
            f"input_spec={SMALL_INPUT!r}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})
    log = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(log.read_text().splitlines())
    assert done < 6, "the run finished before it could be interrupted"
    train(str(shared_dataset), str(tmp_path / "cut"), spec=spec, input_spec=SMALL_INPUT,
          resume=True, progress=False)
    full = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    cut = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["epoch"] for r in cut] == list(range(1, 7))
    for a, b in zip(full, cut):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_mre_mm"] == pytest.approx(a["val_mre_mm"], rel=1e-4)


def test_distillation_from_a_trained_teacher(shared_dataset, tmp_path):
    from edgeld.load import open_detector

    teacher = train(str(shared_dataset), str(tmp_path / "teacher"), role="teacher",
                    spec=replace(FAST, epochs=2, offset_weight=1.0, reconstruction_weight=0.5),
                    input_spec=SMALL_INPUT, progress=False)
    assert "loss_reconstruction" in (tmp_path / "teacher" / "metrics.jsonl").read_text()
    student = train(str(shared_dataset), str(tmp_path / "fsf"), spec=replace(FAST, epochs=2),
                    input_spec=SMALL_INPUT, progress=False, kd="fsf", teacher=teacher["checkpoint"])
    log = (tmp_path / "fsf" / "metrics.jsonl").read_text()
    assert "loss_fsf_shared_gt" in log and "loss_fsf_align" in log
    config = json.loads((tmp_path / "fsf" / "config.json").read_text())
    assert config["kd"] == "fsf" and len(config["teacher_sha256"]) == 64
    det = open_detector(student["checkpoint"])  # the shipped student carries no adapters
    assert det.io.input_height == 64


@pytest.mark.parametrize("kwargs,message", [
    (dict(kd="fsf"), "go together"),
    (dict(teacher="isbi2015-student"), "go together"),
    (dict(kd="fsf", teacher="isbi2015-student", role="teacher"), "--role student"),
    (dict(kd="output", teacher="isbi2015-student"), "takes 384x320"),
])
def test_invalid_distillation_options_are_refused(shared_dataset, tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        train(str(shared_dataset), str(tmp_path / "x"), spec=FAST, input_spec=SMALL_INPUT,
              progress=False, **kwargs)


# `edgeld train` under torchrun, with a hook around the real training loop that makes each rank
# save the weights it ends with (parameters and buffers apart) beside the run's files.
RANK_WEIGHTS_LAUNCHER = """
import sys
from pathlib import Path

import torch

import edgeld.train.trainer as trainer
from edgeld.cli import main

loop = trainer.run_training_loop


def save_final_weights(setup, spec, out, run, *args, **kwargs):
    summary = loop(setup, spec, out, run, *args, **kwargs)
    task = setup.task
    torch.save({"parameters": {k: v.detach().cpu() for k, v in task.named_parameters()},
                "buffers": {k: v.detach().cpu() for k, v in task.named_buffers()}},
               Path(out) / f"final-rank{run.ddp.rank}.pt")
    return summary


trainer.run_training_loop = save_final_weights
sys.argv[0] = "edgeld"
main()
"""


def test_ddp_two_processes_on_gloo(shared_dataset, tmp_path):
    """torchrun with 2 CPU processes (gloo): one log line per epoch, one checkpoint, and every rank
    ends with the same weights, those of rank 0's checkpoint."""
    import torch

    out = tmp_path / "ddp"
    launcher = tmp_path / "launch_train.py"
    launcher.write_text(RANK_WEIGHTS_LAUNCHER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29500 + os.getpid() % 1000), str(launcher), "train",
           "--data", str(shared_dataset), "--out", str(out), "--epochs", "2", "--batch-size", "4",
           "--val-count", "3", "--input-size", "64x64", "--threads", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert json.loads((out / "config.json").read_text())["processes"] == 2
    assert (out / "best.safetensors").is_file()
    ranks = [torch.load(out / f"final-rank{r}.pt", weights_only=True) for r in (0, 1)]
    names = list(ranks[0]["parameters"])
    assert names and names == list(ranks[1]["parameters"])
    differ = [n for n in names if not torch.equal(ranks[0]["parameters"][n], ranks[1]["parameters"][n])]
    assert not differ, f"the ranks end with different weights: {differ[:5]}"
    saved = torch.load(out / "last.pt", weights_only=True)["model"]  # rank 0's, after the last epoch
    assert all(torch.equal(saved[n], ranks[1]["parameters"][n]) for n in names)
    # batch-norm running statistics are not averaged by DDP: each forward starts from rank 0's
    # (broadcast_buffers), so after the last step each rank holds its own last update; the
    # checkpoint holds rank 0's, and the step counts agree
    buffers = ranks[0]["buffers"]
    assert all(torch.equal(saved[n], buffers[n]) for n in buffers)
    assert all(torch.equal(buffers[n], ranks[1]["buffers"][n]) for n in buffers
               if n.endswith("num_batches_tracked"))


def test_val_count_zero_trains_on_every_image_and_keeps_the_last_epoch(shared_dataset, tmp_path):
    """The final run of a validated recipe: all training images, the recipe's epoch count, the
    last epoch's weights (the checkpoint is rewritten every epoch, never selected)."""
    import torch

    from edgeld.models.checkpoint import load_checkpoint
    from edgeld.train.loop import LAST_EPOCH

    fit, val = split_train_val(7, 0, seed=3)
    assert fit == list(range(7)) and val == []
    out = tmp_path / "all"
    res = subprocess.run([sys.executable, "-m", "edgeld", "train", "--data", str(shared_dataset),
                          "--out", str(out), "--epochs", "2", "--batch-size", "4", "--val-count", "0",
                          "--input-size", "64x64", "--threads", "1"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "last epoch 2 (no validation images)" in res.stdout
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2] and not any("val_mre_mm" in x for x in lines)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"] == {"epoch": 2, "selection": LAST_EPOCH}
    net, _, meta = load_checkpoint(out / "best.safetensors")
    assert meta["training"]["val_images"] == [] and meta["training"]["best"]["epoch"] == 2
    # the checkpoint is the last epoch's weights: those the resume state holds
    last = torch.load(out / "last.pt", weights_only=True)["model"]
    saved = {k.removeprefix("net."): v for k, v in last.items() if k.startswith("net.")}
    assert saved and all(torch.equal(net.state_dict()[k], v) for k, v in saved.items())
    # and nothing can be fitted on its validation films, since it has none
    from edgeld.decode_fit import fit_radius
    from edgeld.model_ref import resolve_model
    with pytest.raises(UserError, match="trained on every image"):
        fit_radius(resolve_model(str(out / "best.safetensors")), None, str(shared_dataset), progress=False)


def test_training_toward_the_mean_annotation(shared_dataset, tmp_path):
    """--reference mean trains toward and selects on senior and junior averaged: the same seed
    meets other targets and scores other validation errors, and the checkpoint records it, so
    that fitting a decoding on its validation films measures against the same annotation."""
    from edgeld.data import open_dataset
    from edgeld.models.checkpoint import load_checkpoint

    spec = replace(FAST, epochs=1)
    runs = {ref: train(str(shared_dataset), str(tmp_path / ref), spec=spec, input_spec=SMALL_INPUT,
                       progress=False, reference=None if ref == "default" else ref)
            for ref in ("default", "mean")}
    logged = {ref: json.loads((tmp_path / ref / "metrics.jsonl").read_text().splitlines()[0])
              for ref in runs}
    assert logged["mean"]["train_loss"] != logged["default"]["train_loss"]
    assert logged["mean"]["val_mre_mm"] != logged["default"]["val_mre_mm"]
    _, _, meta = load_checkpoint(runs["mean"]["checkpoint"])
    dataset = open_dataset(shared_dataset)
    assert meta["training"]["reference"] == "mean" == dataset.reference_of(meta["training"])
    _, _, meta = load_checkpoint(runs["default"]["checkpoint"])
    assert dataset.reference_of(meta["training"]) == "senior"
    assert dataset.reference_of({}) == "senior"  # recipes recorded before the option


def test_an_annotation_the_films_lack_is_refused_in_one_line(shared_dataset, tmp_path):
    res = subprocess.run([sys.executable, "-m", "edgeld", "train", "--data", str(shared_dataset),
                          "--out", str(tmp_path / "run"), "--reference", "resident"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "no 'resident' annotation" in res.stderr and "junior, senior" in res.stderr
    assert not (tmp_path / "run").exists()


def test_exported_gates_measure_against_the_annotation_trained_toward(shared_dataset, tmp_path):
    """A model trained toward the mean carries that into its ONNX manifest, and the INT8 export's
    accuracy gate scores its validation films against the mean, not the dataset's default."""
    import numpy as np

    from edgeld.data import open_dataset
    from edgeld.export.gate import Gate
    from edgeld.export.onnx import export_onnx

    run = train(str(shared_dataset), str(tmp_path / "mean"), spec=replace(FAST, epochs=1),
                input_spec=SMALL_INPUT, progress=False, reference="mean")
    manifest = export_onnx(run["checkpoint"], tmp_path / "mean.onnx")
    validation = manifest.source["validation"]
    assert validation["reference"] == "mean" and len(validation["images"]) == FAST.val_count
    gate = Gate.load(manifest.io, shared_dataset, None, validation, reference=validation["reference"])
    by_id = {s.image_id: s for s in open_dataset(shared_dataset).split("train")}
    expected = np.stack([by_id[i].reference("mean") for i in validation["images"]])
    assert gate.split and np.array_equal(gate.references, expected)
    assert not np.array_equal(gate.references,
                              np.stack([by_id[i].reference("senior") for i in validation["images"]]))
