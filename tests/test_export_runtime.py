import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import synthetic_image, synthetic_points
from edgeld.core.errors import UserError
from edgeld.core.manifest import Manifest, manifest_path
from edgeld.load import open_detector
from edgeld.runtime import LandmarkDetector


def test_export_writes_onnx_and_manifest(tiny_onnx, tiny_checkpoint):
    manifest = Manifest.read(tiny_onnx)
    assert manifest.artifact.precision == "fp32" and manifest.artifact.opset >= 17
    assert manifest.io.landmarks == ("tip", "notch", "corner")
    assert manifest.io.input_height == 64 and manifest.io.orientation is None
    parity = manifest.section("parity")
    assert parity["max_abs_logit_diff"] <= parity["logit_atol"]
    assert manifest.tools["onnxruntime"] and manifest.tools["torch"]
    assert manifest.source["params"] > 0 and manifest.source["macs"] > 0


def test_onnx_runtime_agrees_with_torch_on_images(tiny_onnx, tiny_checkpoint):
    rng = np.random.default_rng(3)
    images = [synthetic_image(rng, synthetic_points(rng)) for _ in range(3)]
    torch_det = open_detector(str(tiny_checkpoint))
    onnx_det = LandmarkDetector(tiny_onnx)
    a = torch_det.detect_batch(images)
    b = onnx_det.detect_batch(images)
    for da, db in zip(a, b):
        assert np.abs(da.landmarks_px - db.landmarks_px).max() < 0.05
        assert np.abs(da.confidence - db.confidence).max() < 1e-3


def test_detection_units_and_record():
    from edgeld.runtime import Detection

    det = Detection(np.array([[10.0, 20.0]]), np.array([0.5]), ("a",), (0.2, 0.1))
    rec = det.to_dict("x.png")
    assert rec["spacing_mm"] == [0.2, 0.1]
    assert rec["landmarks"][0]["x_mm"] == pytest.approx(1.0)  # x uses the column spacing
    assert rec["landmarks"][0]["y_mm"] == pytest.approx(4.0)
    unknown = Detection(np.array([[10.0, 20.0]]), np.array([0.5]), ("a",), None).to_dict("x")
    assert unknown["spacing_mm"] is None and unknown["landmarks"][0]["x_mm"] is None


def test_modified_artifact_is_refused(tiny_onnx, tmp_path):
    copy = tmp_path / "m.onnx"
    copy.write_bytes(tiny_onnx.read_bytes()[:-10])
    manifest_path(copy).write_text(manifest_path(tiny_onnx).read_text())
    with pytest.raises(UserError, match="sha256"):
        LandmarkDetector(copy)
    copy.write_bytes(tiny_onnx.read_bytes())
    manifest_path(copy).unlink()
    with pytest.raises(UserError, match="no manifest"):
        LandmarkDetector(copy)


def test_runtime_runs_with_torch_blocked(tiny_onnx):
    """The runtime, core and metrics never import torch: run a detection with torch unimportable."""
    code = f"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import numpy as np
from edgeld.runtime import LandmarkDetector
import edgeld.core.codec, edgeld.core.manifest, edgeld.metrics, edgeld.evaluate, edgeld.load, edgeld.info
import edgeld.detect_file
det = LandmarkDetector({str(tiny_onnx)!r})
out = det.detect(np.zeros((160, 128), np.uint8), 0.1)
assert out.landmarks_px.shape == (3, 2)
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m])
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_cli_evaluates_onnx_with_torch_blocked(tiny_onnx, shared_dataset, tmp_path):
    out = tmp_path / "r.json"
    code = f"""
import sys
sys.modules["torch"] = None
sys.argv = ["edgeld", "evaluate", {str(tiny_onnx)!r}, "--data", {str(shared_dataset)!r},
            "--split", "test1", "--json", {str(out)!r}]
from edgeld.cli import main
main()
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["n_images"] == 4


def test_export_refuses_when_runtimes_disagree(tiny_checkpoint, tmp_path, monkeypatch):
    """The parity gate: a graph that computes something else must not be written."""
    import edgeld.export.onnx as exp

    real = exp._simplify

    def corrupt(graph):
        graph = real(graph)
        for init in graph.graph.initializer:  # perturb the last conv's bias
            if init.dims and len(init.dims) == 1 and init.dims[0] == 3:
                from onnx import numpy_helper
                arr = numpy_helper.to_array(init).copy() + 1.0
                arr[0] += 5.0
                init.CopyFrom(numpy_helper.from_array(arr, init.name))
        return graph

    monkeypatch.setattr(exp, "_simplify", corrupt)
    out = tmp_path / "bad.onnx"
    with pytest.raises(UserError, match="disagrees"):
        exp.export_onnx(str(tiny_checkpoint), out)
    assert not out.exists() and not manifest_path(out).exists()
