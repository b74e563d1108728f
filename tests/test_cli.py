"""The command-line contract: commands, JSON fields, exit codes."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeld.cli import cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def run_process(*args):
    return subprocess.run([sys.executable, "-m", "edgeld", *map(str, args)], capture_output=True,
                          text=True)


def test_evaluate_json_fields(tiny_onnx, shared_dataset, tmp_path):
    out = tmp_path / "r.json"
    res = run("evaluate", tiny_onnx, "--data", shared_dataset, "--split", "test1", "--json", out,
              "--baseline")
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    for key in ("model", "data", "split", "reference", "n_images", "n_landmarks", "mre_mm",
                "mre_std_mm", "sdr_percent", "per_landmark"):
        assert key in r
    assert r["n_images"] == 4 and r["n_landmarks"] == 3 and r["reference"] == "senior"
    assert set(r["sdr_percent"]) == {"2.0", "2.5", "3.0", "4.0"}
    assert [p["name"] for p in r["per_landmark"]] == ["tip", "notch", "corner"]
    assert r["baseline"]["mre_mm"] > 0


def test_evaluate_torch_and_onnx_agree(tiny_onnx, tiny_checkpoint, shared_dataset, tmp_path):
    mre = {}
    for name, model in (("torch", tiny_checkpoint), ("onnx", tiny_onnx)):
        out = tmp_path / f"{name}.json"
        assert run("evaluate", model, "--data", shared_dataset, "--split", "test1", "--json", out,
                   "--reference", "mean").exit_code == 0
        mre[name] = json.loads(out.read_text())["mre_mm"]
    assert abs(mre["torch"] - mre["onnx"]) < 0.01


def test_predict_json_and_overlay(tiny_onnx, shared_dataset, tmp_path):
    images = sorted((shared_dataset / "images").glob("*.png"))[:2]
    out = tmp_path / "p.json"
    res = run("predict", tiny_onnx, *images, "--spacing", 0.2, "--json", out, "--overlay",
              tmp_path / "ov")
    assert res.exit_code == 0, res.output
    records = json.loads(out.read_text())
    assert [r["image"] for r in records] == [str(p) for p in images]
    lm = records[0]["landmarks"][0]
    assert set(lm) == {"name", "x_px", "y_px", "x_mm", "y_mm", "confidence", "uncertainty",
                       "uncertain"}
    assert lm["uncertain"] is None  # a model with no fitted score flags nothing
    assert lm["x_mm"] == pytest.approx(lm["x_px"] * 0.2)
    overlay = Image.open(tmp_path / "ov" / f"{images[0].stem}.png")
    assert overlay.size[1] == 160 and overlay.size[0] > 128 and overlay.mode == "RGB"  # + legend


def test_info_json(tiny_onnx, tiny_checkpoint, tmp_path):
    for model in (tiny_onnx, tiny_checkpoint):
        out = tmp_path / "i.json"
        assert run("info", model, "--json", out).exit_code == 0
        info = json.loads(out.read_text())
        assert info["input_size"] == [64, 64] and info["landmarks"] == ["tip", "notch", "corner"]
        assert info["params"] > 0 and info["macs"] > 0 and info["precision"] == "fp32"
        assert info["decoding"] == "parabola vertex"  # a contract with no fitted radius


def test_benchmark_writes_results(tiny_onnx, tiny_checkpoint, shared_dataset, tmp_path):
    res = run("benchmark", tiny_onnx, tiny_checkpoint, "--data", shared_dataset, "--split", "test1",
              "--seconds", 0.2, "--out", tmp_path / "b")
    assert res.exit_code == 0, res.output
    records = json.loads((tmp_path / "b" / "results.json").read_text())["records"]
    assert {r["backend"] for r in records} == {"onnxruntime-cpu", "torch-cpu"}
    for r in records:
        assert r["batch"] == 1 and r["precision"] == "fp32"
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] and lat["runs"] >= 50
        assert r["end_to_end_ms"]["p50"] > 0 and "mre_mm" in r and r["device"]["cpu"]
        assert r["peak_host_memory_mb"] > 10
    assert "| model | backend |" in (tmp_path / "b" / "results.md").read_text()


def test_doctor_lists_backends():
    res = run("doctor")
    assert res.exit_code == 0
    assert "ONNX Runtime" in res.output and "CPUExecutionProvider" in res.output
    assert "TensorRT" in res.output


def test_python_dash_m_works():
    res = run_process("--help")
    assert res.returncode == 0 and "evaluate" in res.stdout


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (160, 128), dtype=np.uint8)).save(
        d / "full.jpg", quality=90)
    data = (d / "full.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "notes.png").write_text("hello")
    (d / "empty_dir").mkdir()
    return d


@pytest.mark.parametrize("args_fn,fragment", [
    (lambda d, m: ["predict", m, d / "missing.png"], "image not found"),
    (lambda d, m: ["predict", m, d / "truncated.jpg"], "truncated or corrupt"),
    (lambda d, m: ["predict", m, d / "notes.png"], "not a readable image"),
    (lambda d, m: ["evaluate", "no-such-model", "--data", d, "--split", "x"], "not a dataset"),
    (lambda d, m: ["info", "no-such-model"], "unknown model"),
    (lambda d, m: ["evaluate", m, "--data", d / "empty_dir", "--split", "test1"], "not a dataset"),
    (lambda d, m: ["info", d / "missing.onnx"], "not found"),
    (lambda d, m: ["export", "no-such-model", "--to", "onnx", "--out", d / "x.onnx"], "unknown model"),
])
def test_bad_input_exits_2_with_one_line(bad_inputs, tiny_onnx, args_fn, fragment):
    res = run_process(*args_fn(bad_inputs, tiny_onnx))
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and fragment in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (bad_inputs / "x.onnx").exists()


def test_benchmark_batches_report_best_throughput(tiny_onnx, tmp_path):
    res = run("benchmark", tiny_onnx, "--batch", 1, "--batch", 4, "--seconds", 0.2,
              "--out", tmp_path / "b")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "b" / "results.json").read_text())
    assert [r["batch"] for r in data["records"]] == [1, 4]
    best = data["best_throughput"][0]
    assert best["throughput_ips"] == max(r["throughput_ips"] for r in data["records"])


def test_evaluate_says_when_the_model_was_trained_toward_another_annotation(
        tiny_checkpoint, shared_dataset, tmp_path):
    """A mean-trained model scored with the dataset's default (senior) gets a one-line note naming
    the flag that scores it against its own annotation; asked for explicitly, or for a model trained
    toward the default, evaluate says nothing of it."""
    from edgeld.models.checkpoint import load_checkpoint, save_checkpoint

    model, io, _ = load_checkpoint(tiny_checkpoint)
    mean_trained = tmp_path / "mean.safetensors"
    save_checkpoint(mean_trained, model, io, {"training": {"reference": "mean"}})
    noted = run("evaluate", mean_trained, "--data", shared_dataset, "--split", "test1")
    assert noted.exit_code == 0, noted.output
    assert "trained toward the mean annotation" in noted.stderr
    assert "--reference mean" in noted.stderr and "reference senior" in noted.stdout
    for args in ((mean_trained, "--reference", "senior"), (tiny_checkpoint,)):
        quiet = run("evaluate", *args, "--data", shared_dataset, "--split", "test1")
        assert quiet.exit_code == 0 and "note:" not in quiet.stderr
