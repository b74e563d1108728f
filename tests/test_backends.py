"""Where models run: the trainer's --device, the torch benchmark backends and repeated benchmarks.

CUDA paths need a GPU this machine lacks: those tests skip with that reason; the GPU figures in
benchmarks/gpu-h200 were measured through the same code on an H200.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgeld.core.errors import UserError
from edgeld.load import open_detector
from edgeld.models.checkpoint import load_checkpoint
from edgeld.models.runner import TORCH_BACKENDS, TorchRunner
from edgeld.runtime.runners import InactiveRunnerError
from edgeld.train.trainer import resolve_device
from tests.test_cli import run

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def test_resolve_device_auto_and_cpu():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="--device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_refused_without_gpu(tiny_checkpoint):
    with pytest.raises(UserError, match="no CUDA GPU"):
        resolve_device("cuda")
    for backend in TORCH_BACKENDS[1:]:
        with pytest.raises(UserError, match="needs a CUDA GPU"):
            open_detector(str(tiny_checkpoint), backend=backend)
    with pytest.raises(ValueError):
        TorchRunner(torch.nn.Identity(), "cpu", precision="fp16")


def test_onnx_refuses_torch_backend(tiny_onnx):
    with pytest.raises(UserError, match="checkpoints and built-in models only"):
        open_detector(str(tiny_onnx), backend="torch-cuda")


def test_torch_cpu_runner_matches_plain_forward(tiny_checkpoint):
    model, io, _ = load_checkpoint(tiny_checkpoint)
    x = np.random.default_rng(0).normal(size=(2, 1, io.input_height, io.input_width)).astype(np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    with TorchRunner.for_backend(model, "torch-cpu") as runner:
        got = runner.infer(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_torch_runner_lifecycle(tiny_checkpoint):
    model, io, _ = load_checkpoint(tiny_checkpoint)
    x = np.zeros((1, 1, io.input_height, io.input_width), np.float32)
    runner = TorchRunner(model.train())
    assert not runner.is_active and runner.model.training  # construction changes nothing
    with pytest.raises(InactiveRunnerError, match="torch-cpu runner is not active"):
        runner.infer(x)
    with runner:
        assert runner.is_active and not runner.model.training  # eval mode once active
        assert runner.infer(x).shape[0] == 1
    assert not runner.is_active
    with pytest.raises(InactiveRunnerError):
        runner.infer(x)


@needs_cuda
@pytest.mark.parametrize("backend", TORCH_BACKENDS[1:])
def test_cuda_backends_agree_with_cpu(tiny_checkpoint, backend):
    model, io, _ = load_checkpoint(tiny_checkpoint)
    x = np.random.default_rng(0).normal(size=(1, 1, io.input_height, io.input_width)).astype(np.float32)
    with TorchRunner.for_backend(load_checkpoint(tiny_checkpoint)[0], "torch-cpu") as cpu_runner:
        cpu = cpu_runner.infer(x)
    runner = TorchRunner.for_backend(model, backend)
    runner.activate()
    tol = 1e-2 if "fp16" in backend else 1e-3
    np.testing.assert_allclose(runner.infer(x), cpu, rtol=tol, atol=tol)
    times = runner.cuda_event_times(x)
    runner.deactivate()
    with pytest.raises(InactiveRunnerError):
        runner.cuda_event_times(x)
    assert set(times) == {"h2d", "compute", "d2h"} and min(times.values()) >= 0


def test_benchmark_repeat_reports_spread(tiny_onnx, tmp_path):
    res = run("benchmark", tiny_onnx, "--seconds", 0.1, "--min-runs", 5, "--repeat", 3,
              "--out", tmp_path / "b")
    assert res.exit_code == 0, res.output
    (record,) = json.loads((tmp_path / "b" / "results.json").read_text())["records"]
    for key in ("latency_ms", "end_to_end_ms"):
        p50s = record[key]["p50_repeats"]
        assert len(p50s) == 3 and record[key]["p50"] == sorted(p50s)[1]  # the median repeat
        assert record[key]["p50_spread_pct"] == pytest.approx(100 * (max(p50s) - min(p50s)) / min(p50s))
    assert record["latency_ms"]["runs"] >= 5
    assert "repeat 3/3" in res.output and "%" in (tmp_path / "b" / "results.md").read_text()


def test_onnxruntime_backends(tiny_onnx, tiny_checkpoint, tmp_path):
    import onnxruntime as ort

    detector = open_detector(str(tiny_onnx), backend="onnxruntime-cpu")
    detector.detect(np.zeros((40, 30), np.uint8))
    assert detector.runner.name == "onnxruntime-cpu"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(UserError, match="CUDAExecutionProvider"):
            open_detector(str(tiny_onnx), backend="onnxruntime-cuda")
    with pytest.raises(UserError, match="export"):
        open_detector(str(tiny_checkpoint), backend="onnxruntime-cpu")
    # one command, a checkpoint and an ONNX file: each runs on the backends of its kind
    res = run("benchmark", tiny_onnx, tiny_checkpoint, "--backend", "onnxruntime-cpu", "--backend", "torch-cpu",
              "--seconds", 0.1, "--min-runs", 3, "--out", tmp_path / "b")
    assert res.exit_code == 0, res.output
    records = json.loads((tmp_path / "b" / "results.json").read_text())["records"]
    assert [r["backend"] for r in records] == ["onnxruntime-cpu", "torch-cpu"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU pinning is Linux-only")
def test_benchmark_pins_to_the_cpus_asked(tiny_onnx, tmp_path):
    # a subprocess: pinning the test process itself would slow every later test
    cpu = min(os.sched_getaffinity(0))
    done = subprocess.run([sys.executable, "-m", "edgeld", "benchmark", str(tiny_onnx), "--seconds",
                           "0.1", "--min-runs", "5", "--cpus", str(cpu), "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert results["device"]["cpu_affinity"] == [cpu] and results["device"]["threads"] == 1
    bad = subprocess.run([sys.executable, "-m", "edgeld", "benchmark", str(tiny_onnx), "--cpus",
                          "4096", "--out", str(tmp_path / "c")], capture_output=True, text=True)
    assert bad.returncode == 2 and "may use CPUs" in bad.stderr and not (tmp_path / "c").exists()
