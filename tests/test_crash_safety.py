"""SIGKILL at any moment leaves whole artifacts or none, and a killed training run resumes to the
same result as an uninterrupted one. Real `python -m edgeld` processes, killed for real."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from edgeld.core.manifest import Manifest, manifest_path
from edgeld.export.calibration import build_calibration
from edgeld.runtime import LandmarkDetector

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2-core CI machine; also keeps training deterministic


def start(*args) -> subprocess.Popen:
    # stderr to a file, not a pipe: progress bars could fill a pipe nobody reads until the end
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "edgeld", *map(str, args)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log
    return proc


def stderr(proc: subprocess.Popen) -> str:
    proc.log.seek(0)
    return proc.log.read()[-3000:]


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def kill_when(proc: subprocess.Popen, condition, timeout: float = 120.0) -> bool:
    """SIGKILL as soon as `condition()` holds (polled every ms); False if the process ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if condition():
            kill(proc)
            return True
        time.sleep(0.001)
    if proc.poll() is None:
        kill(proc)
        pytest.fail("the process neither ended nor reached the kill point in time")
    return False


def assert_whole_or_absent(out: Path) -> None:
    """The final path holds nothing, or an artifact its manifest vouches for that really loads."""
    if not out.exists():
        return
    manifest = Manifest.read(out)  # raises unless the manifest is there and its sha256 matches
    assert manifest.artifact.bytes == out.stat().st_size
    LandmarkDetector(out)  # ONNX Runtime parses it and its signature matches the manifest


def test_export_onnx_killed_while_writing(tiny_checkpoint, tmp_path):
    """The dangerous moment of an export is its last one: kill the instant the artifact appears
    at its final path (writing it before its manifest failed this in 5 of 5 tries)."""
    out = tmp_path / "m.onnx"
    proc = start("export", tiny_checkpoint, "--to", "onnx", "--out", out)
    killed = kill_when(proc, out.exists)
    assert killed or proc.returncode == 0, stderr(proc)
    assert_whole_or_absent(out)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_lowered_export_killed_at_many_moments(precision, tiny_onnx, shared_dataset, tmp_path):
    """Time a complete export, then kill fresh ones at fractions of that time and the moment the
    manifest appears; each leaves a whole artifact or none, and a later export still succeeds."""
    args = ["export", tiny_onnx, "--to", precision, "--data", shared_dataset, "--split", "test1",
            "--max-mre-increase", "100"]  # the gate is not under test here; the files are
    if precision == "int8":
        io = Manifest.read(tiny_onnx).io
        build_calibration(shared_dataset, "train", 4, tmp_path / "cal", io, "first", progress=False)
        args += ["--calibration", tmp_path / "cal"]

    t0 = time.monotonic()
    done = start(*args, "--out", tmp_path / "full" / "m.onnx")
    assert done.wait(timeout=120) == 0, stderr(done)
    duration = time.monotonic() - t0
    assert_whole_or_absent(tmp_path / "full" / "m.onnx")

    for k, moment in enumerate((0.3, 0.6, 0.8, 0.9, 0.95, "manifest", "artifact")):
        out = tmp_path / f"cut{k}" / "m.onnx"
        proc = start(*args, "--out", out)
        if moment == "manifest":  # the instant either final file appears
            kill_when(proc, manifest_path(out).exists)
        elif moment == "artifact":
            kill_when(proc, out.exists)
        else:
            fraction = float(moment)
            try:
                proc.wait(timeout=duration * fraction)
            except subprocess.TimeoutExpired:
                kill(proc)
        assert_whole_or_absent(out)
    # leftovers of a killed export (hidden temp files) do not stand in the way of the next one
    proc = start(*args, "--out", out)
    assert proc.wait(timeout=120) == 0, stderr(proc)
    assert_whole_or_absent(out)
    assert out.exists()


def _records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k != "elapsed_s"} for ln in lines]


def test_training_resumes_after_sigkill_like_an_uninterrupted_run(shared_dataset, tmp_path):
    from safetensors.numpy import load_file

    # 128x128, batch 2: ~0.3 s per epoch here, time enough to kill between epochs 2 and 4
    args = ["train", "--data", shared_dataset, "--epochs", "4", "--input-size", "128x128",
            "--batch-size", "2", "--val-count", "3", "--threads", "1", "--seed", "3"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    reference = start(*args, "--out", full)  # side by side: one thread each on a 2-core machine

    log = cut / "metrics.jsonl"
    proc = start(*args, "--out", cut)
    killed = kill_when(proc, lambda: log.is_file() and log.read_text().count("\n") >= 2)
    assert killed, "the run finished before it could be killed"
    assert reference.wait(timeout=120) == 0, stderr(reference)
    assert len(_records(cut)) < 4 and not (cut / "summary.json").exists()
    proc = start(*args, "--out", cut, "--resume")
    assert proc.wait(timeout=120) == 0, stderr(proc)

    # exact equality: resume restores model, optimizer, scheduler, the loader's generator and the
    # augmentation RNG, and one CPU thread runs the same kernels in the same order, so every logged
    # float (losses, lr, validation MRE/SDR) and every weight is bit-identical
    assert [r["epoch"] for r in _records(cut)] == [1, 2, 3, 4]
    assert _records(cut) == _records(full)
    summary = {p: json.loads((p / "summary.json").read_text()) for p in (full, cut)}
    assert summary[cut]["best"] == summary[full]["best"]
    a, b = (load_file(str(p / "best.safetensors")) for p in (full, cut))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_refiner_resumes_after_sigkill_like_an_uninterrupted_run(shared_dataset, tiny_checkpoint,
                                                                  tmp_path):
    """The refiner runs through the same loop as the other roles: a killed refiner run resumed
    with --resume logs and selects exactly what an uninterrupted one does."""
    from safetensors.numpy import load_file

    # 64 px patches at full resolution, 27 patches a batch of 8: a fraction of a second an epoch
    args = ["train", "--role", "refiner", "--stage1", tiny_checkpoint, "--data", shared_dataset,
            "--patch-factor", "1", "--epochs", "6", "--batch-size", "8", "--val-count", "3",
            "--threads", "1", "--seed", "3", "--device", "cpu"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    reference = start(*args, "--out", full)

    log = cut / "metrics.jsonl"
    proc = start(*args, "--out", cut)
    killed = kill_when(proc, lambda: log.is_file() and log.read_text().count("\n") >= 2)
    assert killed, "the run finished before it could be killed"
    assert reference.wait(timeout=120) == 0, stderr(reference)
    assert len(_records(cut)) < 6 and not (cut / "summary.json").exists()
    proc = start(*args, "--out", cut, "--resume")
    assert proc.wait(timeout=120) == 0, stderr(proc)

    assert [r["epoch"] for r in _records(cut)] == list(range(1, 7))
    assert _records(cut) == _records(full)
    assert all("val_stage1_mre_mm" in r for r in _records(cut))
    summary = {p: json.loads((p / "summary.json").read_text()) for p in (full, cut)}
    assert summary[cut]["best"] == summary[full]["best"]
    a, b = (load_file(str(p / "best.safetensors")) for p in (full, cut))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_resume_drops_a_half_written_log_line(tmp_path):
    """A kill in the middle of appending an epoch's line leaves half a JSON line; resuming drops
    it (and lines past the resume state) instead of failing on it."""
    from edgeld.train.run_folder import drop_log_lines_after

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"epoch": 1, "train_loss": 1.0}\n{"epoch": 2, "train_loss": 0.5}\n'
                   '{"epoch": 3, "train_lo')
    drop_log_lines_after(log, 2)
    assert [json.loads(ln)["epoch"] for ln in log.read_text().splitlines()] == [1, 2]
    drop_log_lines_after(log, 1)
    assert log.read_text() == '{"epoch": 1, "train_loss": 1.0}\n'
